"""Metrics on hand-made predictions, and the report files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from activity.evaluation.metrics import compute_metrics, topk_accuracy
from activity.evaluation.reports import format_table, write_report


def probs_for(pred: list[int], num_classes: int, confidence: float = 0.6) -> np.ndarray:
    """Probabilities whose argmax is ``pred``."""
    p = np.full((len(pred), num_classes), (1 - confidence) / (num_classes - 1))
    p[np.arange(len(pred)), pred] = confidence
    return p


CLASSES3 = ["clap", "jump", "wave"]
# clap: 6/6 right, jump: 1/2, wave: 0/2
Y3 = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
PRED3 = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]


def test_top1_and_mean_class_accuracy():
    res = compute_metrics(Y3, probs_for(PRED3, 3), CLASSES3)
    m = res["metrics"]
    assert m["num_videos"] == 10
    assert m["top1"] == pytest.approx(0.7)
    assert m["mean_class_accuracy"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert "top5" not in m  # only with more than 5 classes
    np.testing.assert_allclose(res["per_class_accuracy"], [1.0, 0.5, 0.0])
    assert res["confusion"].tolist() == [[6, 0, 0], [1, 1, 0], [2, 0, 0]]
    rep = res["report"]
    assert rep["clap"]["precision"] == pytest.approx(6 / 9)
    assert rep["clap"]["recall"] == pytest.approx(1.0)
    assert rep["jump"]["precision"] == pytest.approx(1.0)
    assert rep["wave"]["support"] == 2 and rep["wave"]["recall"] == 0


def test_perfect_predictions():
    y = np.array([2, 0, 1, 1])
    m = compute_metrics(y, probs_for(y.tolist(), 3), CLASSES3)["metrics"]
    assert m["top1"] == 1.0 and m["mean_class_accuracy"] == 1.0


def test_absent_class_is_left_out_of_mean_class_accuracy():
    y = np.array([0, 0, 0, 1])  # no "wave" in the truth
    res = compute_metrics(y, probs_for([0, 0, 0, 2], 3), CLASSES3)
    assert res["metrics"]["top1"] == pytest.approx(0.75)
    assert res["metrics"]["mean_class_accuracy"] == pytest.approx(0.5)  # (1 + 0) / 2, not / 3
    assert res["confusion"].shape == (3, 3)
    assert res["confusion"][:, 2].tolist() == [0, 1, 0]  # still counted as a prediction


def _ranked(true: int, rank: int, num_classes: int = 7) -> np.ndarray:
    """A probability row in which ``true`` is the ``rank``-th most probable class (1 = top)."""
    others = [c for c in range(num_classes) if c != true]
    order = others[: rank - 1] + [true] + others[rank - 1 :]
    p = np.zeros(num_classes)
    p[order] = np.linspace(0.3, 0.01, num_classes)  # distinct, decreasing
    return p / p.sum()


def test_top5_with_more_than_five_classes():
    classes = [f"c{i}" for i in range(7)]
    y = np.array([0, 1, 2, 3, 4])
    ranks = [1, 3, 6, 5, 7]  # in top 5: rows 0, 1, 3
    probs = np.stack([_ranked(t, r) for t, r in zip(y, ranks)])
    assert [int(np.argsort(-p).tolist().index(t)) + 1 for p, t in zip(probs, y)] == ranks
    m = compute_metrics(y, probs, classes)["metrics"]
    assert m["top5"] == pytest.approx(3 / 5)
    assert m["top1"] == pytest.approx(1 / 5)
    assert topk_accuracy(y, probs, 3) == pytest.approx(2 / 5)
    assert topk_accuracy(y, probs, 7) == 1.0


# ---------------------------------------------------------------- report files


@pytest.fixture
def report(tmp_path):
    probs = probs_for(PRED3, 3, confidence=0.8)
    paths = [Path(f"/videos/clip {i}.mp4") for i in range(len(Y3))]
    skipped = {Path("/videos/broken.mp4"): "no decodable frames"}
    result = compute_metrics(Y3, probs, CLASSES3)
    out = tmp_path / "eval" / "nested"
    metrics = write_report(out, result, CLASSES3, paths, Y3, probs, skipped)
    return out, metrics, paths


def test_report_writes_all_files(report):
    out, _, _ = report
    names = {p.name for p in out.iterdir()}
    assert {"metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png", "predictions.csv"} <= names


def test_metrics_json(report):
    out, metrics, _ = report
    data = json.loads((out / "metrics.json").read_text())
    assert data == metrics
    assert {"num_videos", "top1", "mean_class_accuracy", "skipped", "skipped_files"} <= set(data)
    assert data["num_videos"] == 10
    assert data["top1"] == pytest.approx(0.7)
    assert data["mean_class_accuracy"] == pytest.approx(0.5)
    assert data["skipped"] == 1
    assert data["skipped_files"] == {"/videos/broken.mp4": "no decodable frames"}


def _csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_predictions_csv(report):
    out, _, paths = report
    rows = _csv(out / "predictions.csv")
    assert rows[0] == ["path", "true_label", "predicted_label", "probability", "correct", *(f"prob_{c}" for c in CLASSES3)]
    assert len(rows) == 1 + len(Y3)
    for row, p, t, k in zip(rows[1:], paths, Y3, PRED3):
        assert row[0] == str(p)
        assert row[1] == CLASSES3[t]
        assert row[2] == CLASSES3[k]
        assert float(row[3]) == pytest.approx(0.8)
        assert row[4] == str(int(t == k))
        every = [float(x) for x in row[5:]]  # every class's probability, the predicted one among them
        assert every[k] == pytest.approx(0.8) and sum(every) == pytest.approx(1.0, abs=1e-5)
    assert sum(int(r[4]) for r in rows[1:]) == 7


def test_three_classes_get_no_threshold_curves(report):
    out, metrics, _ = report
    assert "roc_auc" not in metrics and not (out / "roc_curve.csv").exists() and not (out / "pr_curve.png").exists()


def test_two_classes_get_roc_and_precision_recall_curves_with_their_areas(tmp_path):
    classes = ["Fall", "NoFall"]
    y = np.array([1, 1, 1, 0, 0])  # two falls
    fall = np.array([0.1, 0.2, 0.7, 0.6, 0.9])  # P(Fall) of each clip
    probs = np.stack([fall, 1 - fall], axis=1)
    paths = [Path(f"/v/{i}.mp4") for i in range(5)]
    metrics = write_report(tmp_path, compute_metrics(y, probs, classes), classes, paths, y, probs, {})
    # Worked by hand: falls score 0.6 and 0.9 against 0.1, 0.2, 0.7 -> 5 of 6 pairs in order.
    assert metrics["roc_auc"] == pytest.approx(5 / 6)
    # Fall positive, by score: F(0.9) N(0.7) F(0.6) -> precision 1 at recall 1/2, 2/3 at recall 1.
    # NoFall positive: N(0.9) N(0.8) F(0.4) N(0.3) -> 1 at 1/3, 1 at 2/3, 3/4 at 1.
    assert metrics["pr_auc"] == pytest.approx({"Fall": 0.5 + 0.5 * 2 / 3, "NoFall": 2 / 3 + 0.75 / 3})
    assert json.loads((tmp_path / "metrics.json").read_text())["pr_auc"] == metrics["pr_auc"]
    roc = _csv(tmp_path / "roc_curve.csv")
    assert roc[0] == ["positive_class", "threshold", "false_positive_rate", "true_positive_rate"]
    fall_roc = [(float(r[2]), float(r[3])) for r in roc[1:] if r[0] == "Fall"]
    assert fall_roc == [(0, 0), (0, 0.5), (0.333333, 0.5), (0.333333, 1), (1, 1)]  # 0.9 | 0.7 | 0.6 | the rest
    pr = _csv(tmp_path / "pr_curve.csv")
    assert pr[0] == ["positive_class", "threshold", "precision", "recall"]
    assert {r[0] for r in pr[1:]} == set(classes) and [r[1] for r in pr[1:]].count("") == 2  # recall 0: no threshold
    for name in ("roc_curve.png", "pr_curve.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one = write_report(tmp_path / "one", compute_metrics(y[:3], probs[:3], classes), classes, paths[:3], y[:3], probs[:3], {})
    assert "roc_auc" not in one  # clips of one class only: no curve to draw


def test_confusion_matrix_csv(report):
    out, _, _ = report
    rows = _csv(out / "confusion_matrix.csv")
    assert rows[0][1:] == CLASSES3
    assert [r[0] for r in rows[1:]] == CLASSES3
    assert [[int(x) for x in r[1:]] for r in rows[1:]] == [[6, 0, 0], [1, 1, 0], [2, 0, 0]]


def test_per_class_csv(report):
    out, _, _ = report
    rows = _csv(out / "per_class.csv")
    assert rows[0] == ["class", "precision", "recall", "f1", "support", "accuracy"]
    by_class = {r[0]: r for r in rows[1:]}
    assert set(by_class) == set(CLASSES3)
    assert by_class["jump"][4] == "2" and float(by_class["jump"][5]) == pytest.approx(0.5)
    assert float(by_class["clap"][1]) == pytest.approx(6 / 9, abs=1e-4)


def test_confusion_png(report):
    out, _, _ = report
    png = out / "confusion_matrix.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000


def test_report_with_many_classes(tmp_path):
    classes = [f"class_{i}" for i in range(40)]  # no per-cell numbers above 30 classes
    rng = np.random.default_rng(0)
    y = rng.integers(0, 40, 100)
    probs = rng.dirichlet(np.ones(40), 100)
    res = compute_metrics(y, probs, classes)
    assert "top5" in res["metrics"]
    write_report(tmp_path, res, classes, [Path(f"{i}.mp4") for i in range(100)], y, probs, {})
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    assert json.loads((tmp_path / "metrics.json").read_text())["skipped"] == 0



class _Unprintable:
    """A path that fails when written out, as a full disk or a bug would midway through a file."""

    def __str__(self) -> str:
        raise OSError("no space left on device")


def _old_report(out: Path) -> dict[str, bytes]:
    out.mkdir(parents=True)
    old = {n: f"old {n}".encode() for n in ("metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png", "predictions.csv")}
    for name, data in old.items():
        (out / name).write_bytes(data)
    return old


def test_report_failing_midway_through_a_file_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "eval"
    old = _old_report(out)
    probs = probs_for(PRED3, 3, confidence=0.8)
    paths = [Path("a.mp4"), Path("b.mp4"), _Unprintable(), *[Path(f"{i}.mp4") for i in range(7)]]  # predictions.csv, row 3
    with pytest.raises(OSError, match="no space"):
        write_report(out, compute_metrics(Y3, probs, CLASSES3), CLASSES3, paths, Y3, probs, {})
    assert sorted(p.name for p in out.iterdir()) == sorted(old)  # no .tmp-* left behind
    assert (out / "predictions.csv").read_bytes() == old["predictions.csv"]
    assert json.loads((out / "metrics.json").read_text())["num_videos"] == 10  # the files before it were written whole


def test_confusion_png_failing_midway_leaves_no_partial_image(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def savefig_then_fail(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half an image")
        raise OSError("no space left on device")

    out = tmp_path / "eval"
    old = _old_report(out)
    monkeypatch.setattr(Figure, "savefig", savefig_then_fail)
    probs = probs_for(PRED3, 3, confidence=0.8)
    with pytest.raises(OSError, match="no space"):
        write_report(out, compute_metrics(Y3, probs, CLASSES3), CLASSES3, [Path(f"{i}.mp4") for i in range(10)], Y3, probs, {})
    assert sorted(p.name for p in out.iterdir()) == sorted(old)
    assert (out / "confusion_matrix.png").read_bytes() == old["confusion_matrix.png"]

def test_format_table():
    text = format_table([["a", "1"], ["long name", "22"]], ["name", "n"])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "n"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[3].startswith("long name  22")
    assert lines[2].index("1") == lines[3].index("22")  # aligned columns
