"""Training curves: ``curves.png`` after every ``activity train`` (and ``--resume``), and TensorBoard logs
written epoch by epoch where tensorboard is installed (nothing, and no complaint, where it is not).

The figure is checked through the ``Line2D`` objects :func:`curves_figure` draws (one per member, side and
metric, found by ``gid``); the PNG of a real run is checked against one drawn from its ``metrics.csv``.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest

from activity.evaluation import curves
from activity.evaluation.curves import TensorBoardLog, best_epochs, curves_figure, write_curves

#: A tiny default (two-stream) run with a two-member ensemble: four models of three epochs each.
TINY = ("features.image_size=32", "features.num_frames=4", "train.epochs=3", "model.ensemble=2",
        "model.hidden_size=8", "model.projection=8")
RECIPE = dict(clips_per_class=4, options=TINY)
LINES = {"appearance/member0", "appearance/member1", "motion/member0", "motion/member1"}
PNG = b"\x89PNG\r\n\x1a\n"


def history(streams=("appearance", "motion"), members=(0, 1), epochs=4, val=True, shift=0.0) -> list[dict]:
    """Rows as :func:`activity.temporal.train.fit` returns them (``stream``/``member`` only where given)."""
    rows = []
    for s in streams:
        for m in members:
            for e in range(1, epochs + 1):
                v = 0.1 * (m or 0) + 0.05 * len(s or "") + shift
                row = {"epoch": e, "train_loss": 1 / e + v, "train_accuracy": 1 - 1 / (e + 1 + v),
                       "val_loss": 1.3 / e + v if val else "", "val_accuracy": 0.9 - 0.5 / e - v if val else "",
                       "lr": 1e-3 / e, "seconds": 0.1}
                rows.append({**({"stream": s} if s is not None else {}), **({"member": m} if m is not None else {}), **row})
    return rows


def drawn(fig) -> dict[str, object]:
    """The figure's curves by gid (``stream/member/side/metric``)."""
    return {line.get_gid(): line for ax in fig.axes for line in ax.lines if line.get_gid()}


def read_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path, newline="")))


# ---------------------------------------------------------------- the figure


def test_curves_figure_draws_each_member_of_each_stream_and_marks_its_best_epoch():
    best = {"appearance": [2, 4, 1], "motion": [3, 1, 4]}
    fig = curves_figure(history(members=(0, 1, 2)), best)
    assert len(fig.axes) == 4  # a row (loss, accuracy) per stream
    lines = drawn(fig)
    for s in ("appearance", "motion"):
        for m in range(3):
            for metric in ("loss", "accuracy"):
                train, val = lines[f"{s}/{m}/train/{metric}"], lines[f"{s}/{m}/val/{metric}"]
                assert list(train.get_xdata()) == [1, 2, 3, 4] and list(val.get_xdata()) == [1, 2, 3, 4]
                assert train.get_color() == val.get_color() == lines[f"appearance/{m}/train/loss"].get_color()
                assert train.get_linestyle() == "-" and val.get_linestyle() == "--"
    row = {(r["stream"], r["member"], r["epoch"]): r for r in history(members=(0, 1, 2))}
    star = lines["motion/1/best/accuracy"]
    assert list(star.get_xdata()) == [1] and list(star.get_ydata()) == [row[("motion", 1, 1)]["val_accuracy"]]
    assert list(lines["appearance/0/best/loss"].get_xdata()) == [2]
    assert len({lines[f"motion/{m}/val/loss"].get_color() for m in range(3)}) == 3  # one colour per member
    per_panel = [sum(1 for line in ax.lines if "/best/" not in line.get_gid()) for ax in fig.axes]
    assert per_panel == [6, 6, 6, 6]  # 3 members x (training, validation), nothing else
    assert best_epochs(best) == {("appearance", 0): 2, ("appearance", 1): 4, ("appearance", 2): 1,
                                 ("motion", 0): 3, ("motion", 1): 1, ("motion", 2): 4}


def test_a_single_model_without_validation_draws_its_training_curves_only():
    fig = curves_figure(history(streams=(None,), members=(None,), epochs=5, val=False), best=5)
    assert len(fig.axes) == 2
    lines = drawn(fig)
    assert set(lines) == {"-/-/train/loss", "-/-/train/accuracy", "-/-/best/loss", "-/-/best/accuracy"}
    assert list(lines["-/-/best/loss"].get_xdata()) == [5]  # without validation the last epoch is kept
    assert best_epochs(5) == {(None, None): 5} and best_epochs([3, 2]) == {(None, 0): 3, (None, 1): 2}
    with pytest.raises(ValueError, match="no training history"):
        curves_figure([])


def test_the_legend_names_every_curve_and_covers_no_panel():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = curves_figure(history(members=(0, 1, 2)), {"appearance": [2, 4, 1], "motion": [3, 1, 4]})
    FigureCanvasAgg(fig).draw()
    (legend,) = fig.legends
    assert not any(ax.get_legend() for ax in fig.axes)
    assert [t.get_text() for t in legend.get_texts()] == [f"member {m} {side}" for m in range(3)
                                                            for side in ("training", "validation")]
    box = legend.get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)


def test_fusion_figure_draws_every_member_and_outlines_the_ones_in_the_mix(tmp_path):
    from activity.evaluation.curves import fusion_figure, write_fusion

    sel = {"fusion_weights": {"appearance": 0.25, "motion": 0.5, "appearance_lr": 0.0, "motion_lr": 0.25},
           "chosen_on": "out-of-fold predictions of 60 labelled clips, 5 folds by group",
           "out_of_fold_accuracy": {"appearance": 0.3, "motion": 0.6, "appearance_lr": 0.35, "motion_lr": 0.55},
           "out_of_fold_mix": {"accuracy": 0.65, "log_loss": 0.9}}
    fig = fusion_figure(sel)
    bars = {p.get_gid(): p for p in fig.axes[0].patches if p.get_gid()}
    assert {k: round(p.get_height(), 6) for k, p in bars.items()} == {f"member/{m}": a for m, a in sel["out_of_fold_accuracy"].items()}
    outlined = [k for k, p in bars.items() if p.get_linewidth() > 0 and p.get_edgecolor()[3] > 0]
    assert outlined == ["member/appearance", "member/motion", "member/motion_lr"]
    assert [round(line.get_ydata()[0], 6) for line in fig.axes[0].lines] == [0.65]  # the chosen mix
    assert "w 0.5" in [t.get_text() for t in fig.axes[0].texts]
    assert write_fusion(sel, tmp_path / "fusion.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="no scores"):
        fusion_figure({"fusion_weights": {"appearance": 0.5, "motion": 0.5}, "chosen_on": "no validation clips: equal weights"})


def test_curves_png_is_an_image_of_the_history(tmp_path):
    a = write_curves(history(), tmp_path / "a.png", {"appearance": [1, 2], "motion": [3, 4]})
    b = write_curves(history(shift=0.2), tmp_path / "b.png", {"appearance": [1, 2], "motion": [3, 4]})
    again = write_curves(history(), tmp_path / "again.png", {"appearance": [1, 2], "motion": [3, 4]})
    assert a.read_bytes()[:8] == PNG and 20_000 < a.stat().st_size < 2_000_000
    assert a.read_bytes() != b.read_bytes()  # other numbers, other picture
    assert a.read_bytes() == again.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "again.png", "b.png"]  # no temporary left over


# ---------------------------------------------------------------- after `activity train`


def _history_of(run: Path) -> list[dict]:
    return read_rows(run / "metrics.csv")


def test_train_writes_curves_png_of_its_metrics(trained_run, tmp_path):
    run = trained_run(**RECIPE).run
    png = run / "curves.png"
    assert png.is_file() and png.read_bytes()[:8] == PNG and png.stat().st_size > 20_000
    rows = _history_of(run)
    assert {f"{r['stream']}/member{r['member']}" for r in rows} == LINES
    best = json.loads((run / "train_summary.json").read_text())["best_epoch"]
    from_csv = write_curves(rows, tmp_path / "from_csv.png", best)  # metrics.csv's text reads as the same numbers
    assert from_csv.read_bytes() == png.read_bytes()
    assert len(curves_figure(rows, best).axes) == 4


def test_resume_draws_the_curves_of_the_whole_history(trained_run, cli, tmp_path):
    r = trained_run(**RECIPE)
    run = tmp_path / "run"
    shutil.copytree(r.run, run)
    (run / "curves.png").unlink()
    result = cli(["train", "--resume", run, "--cache", r.cache, "--quiet"])
    assert result.code == 0, result.err
    assert (run / "curves.png").read_bytes() == (r.run / "curves.png").read_bytes()  # every epoch, not just new ones


class FakeWriter:
    """Stands in for ``SummaryWriter``: records what it is given, and whether the run had finished by then."""

    made: list["FakeWriter"] = []
    run: Path

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step = Path(log_dir), purge_step
        self.scalars: dict[str, list[tuple[int, float]]] = {}
        self.flushes, self.closed, self.after_the_run = 0, False, []
        FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.setdefault(tag, []).append((step, value))
        self.after_the_run.append((self.run / "model.pt").exists())

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


def test_tensorboard_gets_every_epoch_of_every_member_as_it_trains(trained_run, cli, tmp_path, monkeypatch):
    r = trained_run(**RECIPE)
    run = tmp_path / "run"
    FakeWriter.made, FakeWriter.run = [], run
    monkeypatch.setattr(curves, "summary_writer_class", lambda: FakeWriter)
    result = cli(["train", "--data", r.data, "--out", run, "--cache", r.cache, "--quiet", *TINY])
    assert result.code == 0, result.err
    writers = {w.log_dir.relative_to(run / "tensorboard").as_posix(): w for w in FakeWriter.made}
    assert set(writers) == LINES
    for name, w in writers.items():
        rows = read_rows(run / name / "metrics.csv")
        assert len(rows) == 3 and w.purge_step == 1 and w.flushes == 3 and w.closed
        assert set(w.scalars) == {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"}
        for tag, column in curves.SCALARS.items():
            assert w.scalars[tag] == [(int(row["epoch"]), float(row[column])) for row in rows], (name, tag)
        assert not any(w.after_the_run)  # written while training, not from the history at the end


def test_tensorboard_log_names_a_folder_per_model_and_purges_from_its_first_epoch(tmp_path):
    FakeWriter.made, FakeWriter.run = [], tmp_path
    board = TensorBoardLog(tmp_path / "tb", FakeWriter)
    for row in [{"epoch": 4, "train_loss": 0.5, "train_accuracy": 0.7, "val_loss": "", "val_accuracy": "", "lr": 0.1},
                {"member": 1, "epoch": 2, "train_loss": 0.5, "train_accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.5, "lr": 0.1},
                {"stream": "motion", "member": "", "epoch": 1, "train_loss": 0.5, "train_accuracy": 0.7, "lr": 0.1}]:
        board.write(row)
    board.close()
    folders = [(w.log_dir.relative_to(tmp_path / "tb").as_posix(), w.purge_step) for w in FakeWriter.made]
    assert folders == [(".", 4), ("member1", 2), ("motion", 1)]  # a resumed run starts its writer where it picks up
    assert "loss/val" not in FakeWriter.made[0].scalars and FakeWriter.made[1].scalars["loss/val"] == [(2, 0.6)]
    assert all(w.closed for w in FakeWriter.made)


def test_without_tensorboard_training_goes_on_and_says_nothing(trained_run, cli, tmp_path, monkeypatch):
    r = trained_run(**RECIPE)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails, as where it is not installed
    assert curves.summary_writer_class() is None and TensorBoardLog.open(tmp_path / "tb") is None
    run = tmp_path / "run"
    result = cli(["train", "--data", r.data, "--out", run, "--cache", r.cache, "--quiet", *TINY])
    assert result.code == 0, result.err
    assert (run / "curves.png").is_file() and not (run / "tensorboard").exists()
    assert "tensorboard" not in result.err.lower()


def test_real_tensorboard_event_files_hold_the_metrics(trained_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = trained_run(**RECIPE).run
    for name in LINES:
        assert list((run / "tensorboard" / name).glob("events.out.tfevents.*")), name
        events = EventAccumulator(str(run / "tensorboard" / name))
        events.Reload()
        rows = read_rows(run / name / "metrics.csv")
        for tag, column in curves.SCALARS.items():
            got = [(e.step, e.value) for e in events.Scalars(tag)]
            assert got == [(int(row["epoch"]), pytest.approx(float(row[column]), rel=1e-6)) for row in rows], (name, tag)
