"""Training curves: ``curves.png`` of a run's history, and TensorBoard scalars when ``tensorboard`` is installed.

A history is the list of per-epoch rows that :func:`activity.temporal.train.fit` returns (and writes to
``metrics.csv``): ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy`` (``""``
without validation clips), ``lr``, ``seconds``, and, where the run has them, ``stream`` (two-stream
models) and ``member`` (ensembles). Each ``(stream, member)`` pair is one *line*: one model trained on its own.

>>> write_curves(report.fit.history, "run/curves.png", report.fit.best_epoch)
>>> log = TensorBoardLog.open("run/tensorboard")  # None without tensorboard
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activity.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: One trained model of a run: its stream (None for a one-stream model) and member (None without an ensemble).
Line = tuple[Any, Any]

#: ``fit``'s ``best_epoch``: an epoch, one per ensemble member, or either of them per stream.
BestEpoch = int | Sequence[int] | Mapping[str, "int | Sequence[int]"]


def line_of(row: Mapping[str, Any]) -> Line:
    """The ``(stream, member)`` a history row belongs to (``""``, as ``metrics.csv`` leaves them, reads as None)."""
    stream, member = row.get("stream"), row.get("member")
    return (stream if stream not in ("", None) else None, int(member) if member not in ("", None) else None)


def best_epochs(best: BestEpoch | None) -> dict[Line, int]:
    """``fit``'s ``best_epoch`` by line: ``3`` -> ``{(None, None): 3}``, ``{"motion": [2, 4]}`` ->
    ``{("motion", 0): 2, ("motion", 1): 4}``."""
    if best is None:
        return {}
    by_stream = best.items() if isinstance(best, Mapping) else [(None, best)]
    out: dict[Line, int] = {}
    for stream, b in by_stream:
        if isinstance(b, (int, float)):
            out[(stream, None)] = int(b)
        else:
            out.update({(stream, i): int(e) for i, e in enumerate(b)})
    return out


def _number(value: Any) -> float | None:
    """A metric as a float, or None where the row has none (``""``: no validation clips)."""
    return None if value in ("", None) else float(value)


def _series(history: Sequence[Mapping[str, Any]]) -> dict[Line, list[Mapping[str, Any]]]:
    """The rows of each line, in order of first appearance, each sorted by epoch."""
    lines: dict[Line, list[Mapping[str, Any]]] = {}
    for row in history:
        lines.setdefault(line_of(row), []).append(row)
    return {k: sorted(rows, key=lambda r: int(r["epoch"])) for k, rows in lines.items()}


def _name(line: Line) -> str:
    return "model" if line[1] is None else f"member {line[1]}"


def curves_figure(history: Sequence[Mapping[str, Any]], best: BestEpoch | None = None) -> Figure:
    """Loss and accuracy per epoch, training (solid) and validation (dashed), one colour per ensemble member.

    One row of two panels (loss, accuracy) per stream. Each member's best epoch (``fit``'s
    ``best_epoch``) is marked with a star on its validation curves (on its training curves
    without validation). Every curve drawn is a ``Line2D`` whose ``gid`` is
    ``"<stream>/<member>/<train|val|best>/<loss|accuracy>"`` (``-`` for a missing stream or member).

    Raises:
        ValueError: an empty history.
    """
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no backend to choose

    lines = _series(history)
    if not lines:
        raise ValueError("no training history to plot")
    streams = list(dict.fromkeys(stream for stream, _ in lines))
    fig = Figure(figsize=(10, 3.6 * len(streams)), layout="constrained")
    axes = fig.subplots(len(streams), 2, squeeze=False)
    members = list(dict.fromkeys(member for _, member in lines))
    colour = {m: f"C{i % 10}" for i, m in enumerate(members)}
    marks = best_epochs(best)
    for line, rows in lines.items():
        row_axes = axes[streams.index(line[0])]
        for ax, metric in zip(row_axes, ("loss", "accuracy")):
            _draw(ax, line, rows, metric, colour[line[1]], marks.get(line))
    for stream, (loss_ax, acc_ax) in zip(streams, axes):
        title = "" if stream is None else f"{stream} stream: "
        loss_ax.set(title=f"{title}loss", xlabel="epoch", ylabel="loss")
        acc_ax.set(title=f"{title}accuracy", xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02))
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
    # One legend, right of the panels: inside an accuracy panel it sat on the curves (they rise to its corners).
    handles, labels = axes[0][1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    fig.suptitle("training (solid) and validation (dashed); star: the epoch kept", fontsize=10)
    return fig


def _draw(ax: Any, line: Line, rows: Sequence[Mapping[str, Any]], metric: str, colour: str, best: int | None) -> None:
    """One line's training and validation curves of ``metric`` on ``ax``, and its best-epoch mark."""
    gid = "/".join("-" if v is None else str(v) for v in line)
    drawn = {}
    for side, style in (("train", "-"), ("val", "--")):
        points = [(int(r["epoch"]), _number(r[f"{side}_{metric}"])) for r in rows]
        points = [(e, v) for e, v in points if v is not None]
        if points:
            label = f"{_name(line)} {'training' if side == 'train' else 'validation'}"
            ax.plot(*zip(*points), style, color=colour, marker="." if len(points) < 30 else None,
                    label=label, gid=f"{gid}/{side}/{metric}")
            drawn[side] = dict(points)
    at = drawn.get("val") or drawn.get("train")
    if best is not None and at and best in at:
        ax.plot([best], [at[best]], "*", color=colour, markersize=12, markeredgecolor="black", gid=f"{gid}/best/{metric}")


def write_curves(history: Sequence[Mapping[str, Any]], path: str | Path, best: BestEpoch | None = None) -> Path:
    """:func:`curves_figure` as a PNG at ``path``, written atomically; returns ``path``."""
    path = Path(path)
    fig = curves_figure(history, best)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def fusion_figure(selection: Mapping[str, Any]) -> Figure:
    """How a fusion's weights were chosen (``FitResult.selection``): each member's accuracy alone, out of fold
    (or on the validation clips where no folds were made), as bars, the members with a weight outlined and
    their weight written on them, and the chosen mix's accuracy as a dashed line. Bars carry ``gid``
    ``"member/<name>"``.

    Raises:
        ValueError: a selection without scores (no validation and no folds: equal weights).
    """
    from matplotlib.figure import Figure

    alone = selection.get("out_of_fold_accuracy") or selection.get("validation_member_accuracy") or {}
    if not alone:
        raise ValueError("no scores behind these fusion weights")
    mix = selection.get("out_of_fold_mix", {}).get("accuracy", selection.get("validation_accuracy"))
    weights = selection["fusion_weights"]
    fig = Figure(figsize=(1.2 * len(alone) + 2.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for i, (name, acc) in enumerate(alone.items()):
        w = weights.get(name, 0.0)
        bar = ax.bar(i, acc, width=0.7, color="C1" if name.endswith("_lr") else "C0",
                     edgecolor="black" if w > 0 else "none", linewidth=2)
        bar.patches[0].set_gid(f"member/{name}")
        ax.text(i, acc + 0.02, f"w {w:g}", ha="center", fontsize=8)
    if mix is not None:
        ax.axhline(mix, color="black", linestyle="--", linewidth=1, label=f"chosen mix {mix:.3f}")
        fig.legend(loc="outside right upper", fontsize=8)  # beside the bars, never on them
    ax.set(ylabel="accuracy alone", ylim=(0, 1.1), xticks=range(len(alone)))
    ax.set_xticklabels(list(alone), rotation=20, fontsize=8)
    ax.set_title(f"fusion weights (w; outlined: in the mix), chosen on\n{selection['chosen_on']}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return fig


def write_fusion(selection: Mapping[str, Any], path: str | Path) -> Path:
    """:func:`fusion_figure` as a PNG at ``path``, written atomically; returns ``path``."""
    path = Path(path)
    fig = fusion_figure(selection)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


# ---------------------------------------------------------------- TensorBoard

#: The scalars each epoch adds (tag: history column); the line is the TensorBoard run, so members overlay in one chart.
SCALARS = {"loss/train": "train_loss", "loss/val": "val_loss", "accuracy/train": "train_accuracy",
           "accuracy/val": "val_accuracy", "lr": "lr"}


def summary_writer_class() -> type | None:
    """``torch.utils.tensorboard.SummaryWriter``, or None where ``tensorboard`` is not installed (or will not import)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    except Exception as e:  # installed but broken (a protobuf mismatch, say): train on without it, and say so
        log.warning(f"tensorboard is installed but cannot be used ({type(e).__name__}: {e}); no TensorBoard logs",
                    extra={"prefix": "warning"})
        return None
    return SummaryWriter


class TensorBoardLog:
    """TensorBoard event files of a training run, written epoch by epoch as :meth:`write` is given the rows.

    Each line gets its own run folder under ``logdir``, named like the run folder's own
    (``appearance/member0``, ``member1``, ``motion``; ``logdir`` itself for a single model), with the
    scalars of :data:`SCALARS` at step = epoch. A line's writer opens at its first row with
    ``purge_step`` = that epoch, so a resumed (or repeated) run hides what an earlier one logged
    from there on instead of drawing it twice. Every row is flushed at once.
    """

    def __init__(self, logdir: str | Path, writer_class: type) -> None:
        self.logdir = Path(logdir)
        self._writer_class = writer_class
        self._writers: dict[Line, Any] = {}

    @classmethod
    def open(cls, logdir: str | Path) -> TensorBoardLog | None:
        """A log into ``logdir``, or None where tensorboard is not installed."""
        writer_class = summary_writer_class()
        return None if writer_class is None else cls(logdir, writer_class)

    def folder(self, line: Line) -> Path:
        """The run folder of one line."""
        stream, member = line
        parts = [p for p in (stream, None if member is None else f"member{member}") if p is not None]
        return self.logdir.joinpath(*parts)

    def write(self, row: Mapping[str, Any]) -> None:
        """Add one epoch's row (a history row, with its ``stream``/``member`` where the run has them)."""
        line, epoch = line_of(row), int(row["epoch"])
        if line not in self._writers:
            self._writers[line] = self._writer_class(log_dir=str(self.folder(line)), purge_step=epoch)
        writer = self._writers[line]
        for tag, column in SCALARS.items():
            value = _number(row.get(column))
            if value is not None:
                writer.add_scalar(tag, value, epoch)
        writer.flush()

    def close(self) -> None:
        """Close every writer (safe to call twice)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
