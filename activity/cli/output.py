"""What the commands print: one function per workflow result, shared by the commands and the demo."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from activity.evaluation.reports import format_table

if TYPE_CHECKING:
    from activity.evaluation.check import CheckReport
    from activity.inference.recognizer import Prediction
    from activity.inference.timeline import Timeline
    from activity.workflows import BackboneInfo, EvaluateReport, PredictReport, TrainReport


def plural(n: int, word: str) -> str:
    """``"1 window"``, ``"2 windows"``, ``"0 windows"``."""
    return f"{n} {word}{'s' * (n != 1)}"


def _clips(n: int) -> str:
    return plural(n, "clip")


def print_train(r: TrainReport) -> None:
    """``saved RUN/model.pt, best validation accuracy ... (at epoch N)``."""
    val = ""
    sel = r.fit.selection
    if "fusion_weights" in sel and len(sel["fusion_weights"]) == 1:
        val = f", {next(iter(sel['fusion_weights']))} alone (model.members)"
    elif "fusion_weights" in sel:
        mixed = ", ".join(f"{n} {w:g}" for n, w in sel["fusion_weights"].items() if w > 0)
        val = f", fusion of {mixed} (chosen on {sel['chosen_on']}"
        if "out_of_fold_mix" in sel:
            alone = ", ".join(f"{n} {a:.3f}" for n, a in sel["out_of_fold_accuracy"].items())
            val += f": accuracy {sel['out_of_fold_mix']['accuracy']:.3f}; alone: {alone})"
        elif r.fit.best_val_accuracy is not None:
            val += f", accuracy {r.fit.best_val_accuracy:.3f})"
        else:
            val += ")"
    elif "C" in sel:
        val = f", logistic regression with C {sel['C']:g} (chosen by inner cross-validation) fitted on {sel['fitted_on']}"
    elif r.fit.best_val_accuracy is not None:
        at = (f"ensemble of {len(r.fit.members)}, members' best epochs {', '.join(map(str, r.fit.best_epoch))}"  # type: ignore[arg-type]
              if r.fit.members else f"at epoch {r.fit.best_epoch}")
        val = f", best validation accuracy {r.fit.best_val_accuracy:.3f} on {_clips(r.val_clips)} ({at})"
    print(f"saved {r.checkpoint}{val}")


def print_evaluation(r: EvaluateReport) -> None:
    """The per-class table, then top-1, top-5 and mean class accuracy (nothing on ranks other than 0)."""
    if r.metrics is None or r.report is None:
        return
    rows = [[c, f"{r.report[c]['precision']:.3f}", f"{r.report[c]['recall']:.3f}", f"{r.report[c]['f1-score']:.3f}",
             str(int(r.report[c]["support"]))] for c in r.classes]
    print(format_table(rows, ["class", "precision", "recall", "f1", "clips"]))
    m = r.metrics
    top5 = f"  top-5 {m['top5']:.3f}" if "top5" in m else ""
    auc = f"  ROC AUC {m['roc_auc']:.3f}" if "roc_auc" in m else ""
    print(f"\ntop-1 {m['top1']:.3f}{top5}  mean class accuracy {m['mean_class_accuracy']:.3f}{auc}  "
          f"({m['num_videos']} videos, {m['skipped']} skipped) -> {r.out}")


def print_predictions(r: PredictReport) -> None:
    """One row per video and rank: the label and its probability."""
    rows = []
    for p in r.predictions:
        for rank, (label, prob) in enumerate(zip(p.labels, p.probabilities), 1):
            rows.append([str(p.path) if rank == 1 else "", str(rank), label, f"{prob:.3f}"])
    if rows:
        print(format_table(rows, ["video", "rank", "label", "probability"]))



def one_per_class(predictions: Sequence[Prediction], true_label: Callable[[Path], str], n: int = 4) -> list[Prediction]:
    """Up to ``n`` predictions, the first of each true class in turn (input order), then further ones where
    there are fewer classes than ``n``."""
    picked: list[Prediction] = []
    seen: set[str] = set()
    for p in predictions:
        if len(picked) < n and true_label(p.path) not in seen:
            picked.append(p)
            seen.add(true_label(p.path))
    rest = [p for p in predictions if p not in picked]
    return picked + rest[: n - len(picked)]


def print_held_out(predictions: Sequence[Prediction], true_label: Callable[[Path], str], shown: int = 4) -> None:
    """A few held-out clips (one per true class where possible) with true label, prediction and probability,
    then the mean top-1 probability and the share correct over all of them."""
    if not predictions:
        return
    rows = [[p.path.name, true_label(p.path), p.labels[0], f"{p.probabilities[0]:.3f}"]
            for p in one_per_class(predictions, true_label, shown)]
    print(format_table(rows, ["clip", "true", "predicted", "probability"]))
    mean = sum(p.probabilities[0] for p in predictions) / len(predictions)
    correct = sum(p.labels[0] == true_label(p.path) for p in predictions)
    print(f"\nmean confidence {mean:.3f} over {_clips(len(predictions))} held out ({correct} predicted correctly); "
          f"{len(rows)} shown")


def print_timeline(path: Path, tl: Timeline) -> None:
    """``PATH: 18.0 s, 17 windows of 2 s every 1 s``, then one row per segment."""
    rows = [[f"{s.start:.1f}", f"{s.end:.1f}", s.label, f"{s.probability:.2f}"] for s in tl.segments]
    print(f"{path}: {tl.duration:.1f} s, {plural(len(tl.windows), 'window')} of {tl.window:g} s every {tl.stride:g} s")
    print(format_table(rows, ["start", "end", "label", "probability"]) + "\n")


def print_backbones(found: Sequence[BackboneInfo], *, timm: bool = False) -> None:
    """One row per backbone: features, input size, weights on this machine, where they come from; then how to
    use timm models (unless these are timm models)."""
    rows = [[b.name + (" (default)" if b.default else ""), "?" if b.feature_dim is None else str(b.feature_dim),
             f"{b.input_size}px", "yes" if b.offline else "no", b.source] for b in found]
    print(format_table(rows, ["backbone", "features", "input", "offline", "weights"]))
    if not timm:
        print("and timm:NAME, any pretrained timm model (pip install 'activity[timm]'; list them with "
              "activity backbones --timm PATTERN)")


def print_check(report: CheckReport) -> None:
    """What ``activity check`` found (:func:`activity.evaluation.check.format_report`)."""
    from activity.evaluation.check import format_report

    print(format_report(report))

