"""Checkpoints: round trip, and files that are not checkpoints (or that would run code)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from activity import __version__
from activity.config import Config
from activity.errors import ActivityError
from activity.temporal.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from activity.temporal.models import (
    Ensemble,
    LSTMClassifier,
    MeanClassifier,
    build_temporal_model,
)

try:
    from utils import random_checkpoint
except ImportError:  # tests/ imported as a package
    from tests.utils import random_checkpoint

D = 10
CLASSES = ["jump", "run", "sit"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_checkpoint(temporal: str = "lstm", ensemble: int = 1) -> Checkpoint:
    """Random weights and feature statistics, and noise on every parameter: a load must really restore them."""
    cfg = Config()
    cfg.features.streams = ["appearance"]  # one stream: these features are synthetic
    cfg.model.pooled_members = False  # the BiLSTM alone (tests/test_features_motion.py trains a fusion)
    cfg.apply_overrides([f"model.temporal={temporal}", "model.hidden_size=12", "features.num_frames=6", "train.epochs=3",
                         f"model.ensemble={ensemble}"])
    return random_checkpoint(cfg, CLASSES, D, prepare=lambda m: m.norm.set_stats(torch.randn(D), torch.rand(D) + 0.5),
                             noise=0.1, metrics={"val_accuracy": 0.75, "history": [1, 2]})


@pytest.mark.parametrize("temporal, cls, ensemble", [("lstm", LSTMClassifier, 1), ("mean", MeanClassifier, 1), ("lstm", Ensemble, 3)])
def test_round_trip_gives_identical_logits(tmp_path, temporal, cls, ensemble):
    ckpt = make_checkpoint(temporal, ensemble)
    path = tmp_path / "model.pt"
    save_checkpoint(path, ckpt)
    assert path.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]

    loaded = load_checkpoint(path)
    assert isinstance(loaded.model, cls)
    assert not loaded.model.training
    assert loaded.classes == CLASSES
    assert loaded.feature_dim == D
    assert loaded.config == ckpt.config
    assert loaded.config.model.hidden_size == 12 and loaded.config.features.num_frames == 6
    assert loaded.metrics == {"val_accuracy": 0.75, "history": [1, 2]}
    assert loaded.version == __version__

    x = torch.randn(4, 6, D)
    lengths = torch.tensor([6, 3, 1, 5])
    with torch.no_grad():
        a, wa = ckpt.model(x, lengths)
        b, wb = loaded.model(x, lengths)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(wa, wb, rtol=0, atol=0)
    # the standardisation statistics (every member's) travel with it
    for k, v in ckpt.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[k], v, rtol=0, atol=0)
    assert any(k.endswith("norm.feature_mean") for k in ckpt.model.state_dict())
    # and a fresh model would differ, so the comparison above means something
    fresh = build_temporal_model(ckpt.config.model, D, len(CLASSES)).eval()
    assert not torch.allclose(fresh(x, lengths)[0], a)


def test_saving_over_an_existing_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("old")
    save_checkpoint(path, make_checkpoint())
    assert load_checkpoint(path).classes == CLASSES


def test_payload_is_plain_data(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_checkpoint())
    payload = torch.load(path, weights_only=True)  # loads without allowing any Python object
    assert payload["format"] == FORMAT and payload["format_version"] == FORMAT_VERSION
    assert payload["classes"] == CLASSES and payload["feature_dim"] == D
    assert isinstance(payload["config"], dict) and payload["config"]["model"]["hidden_size"] == 12


# ---------------------------------------------------------------- not checkpoints


def _bad(kind: str, tmp: Path) -> Path:
    p = tmp / f"{kind}.pt"
    if kind == "text":
        p.write_text("this is not a checkpoint\nsecond line\n")
    elif kind == "random_bytes":
        p.write_bytes(np.random.default_rng(0).bytes(2048))
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "dict_without_format":
        torch.save({"state_dict": {"w": torch.zeros(2)}, "classes": ["a"]}, p)
    elif kind == "other_format":
        torch.save({"format": "something-else", "format_version": 1}, p)
    elif kind == "tensor":
        torch.save(torch.zeros(3), p)
    elif kind == "list":
        torch.save([1, 2, 3], p)
    elif kind == "truncated":
        save_checkpoint(p, make_checkpoint())
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    else:
        raise AssertionError(kind)
    return p


NOT_CHECKPOINTS = ["text", "random_bytes", "empty", "dict_without_format", "other_format", "tensor", "list", "truncated"]


@pytest.mark.parametrize("kind", NOT_CHECKPOINTS)
def test_not_a_checkpoint_is_one_line_saying_so(tmp_path, kind):
    path = _bad(kind, tmp_path)
    with pytest.raises(ActivityError) as ei:
        load_checkpoint(path)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    assert str(path) in msg
    assert "not an activity checkpoint" in msg, msg
    assert "could run code" not in msg


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ActivityError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(ActivityError, match="a folder without model.pt; pass a checkpoint file or a finished run folder"):
        load_checkpoint(tmp_path)  # a folder that is not a run


class _RunsCode:
    """Unpickling this calls os.system (creates a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > '{self.marker}'",))


@pytest.mark.parametrize("where", ["top", "nested"])
def test_pickle_that_would_run_code_is_refused(tmp_path, where):
    marker = tmp_path / "pwned.txt"
    evil = _RunsCode(marker)
    payload = evil if where == "top" else {"format": FORMAT, "format_version": FORMAT_VERSION, "metrics": {"x": evil}}
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    assert not marker.exists()
    with pytest.raises(ActivityError) as ei:
        load_checkpoint(path)
    msg = str(ei.value)
    assert not marker.exists(), "loading the file ran code from it"
    assert "\n" not in msg
    assert str(path) in msg
    assert "refused" in msg and "could run code" in msg
    # the payload is live: an unsafe load does run it (so the check above means something)
    torch.load(path, weights_only=False)
    assert marker.read_text().strip() == "pwned"


def test_refusal_names_the_blocked_global(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save(_RunsCode(tmp_path / "pwned.txt"), path)
    with pytest.raises(ActivityError) as ei:
        load_checkpoint(path)
    assert "system" in str(ei.value)
    assert not (tmp_path / "pwned.txt").exists()


def _with_version(tmp_path: Path, version) -> Path:
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_checkpoint())
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = version
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("version", [2, 99, 0])
def test_wrong_format_version_names_both_versions(tmp_path, version):
    path = _with_version(tmp_path, version)
    with pytest.raises(ActivityError) as ei:
        load_checkpoint(path)
    msg = str(ei.value)
    assert f"version {version}" in msg
    assert f"version {FORMAT_VERSION}" in msg
    assert __version__ in msg
    assert "\n" not in msg


def test_missing_format_version(tmp_path):
    path = _with_version(tmp_path, None)
    with pytest.raises(ActivityError, match=f"reads version {FORMAT_VERSION}"):
        load_checkpoint(path)


def _edit_payload(tmp_path: Path, edit) -> Path:
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_checkpoint())
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


def test_bad_config_inside_a_checkpoint_names_the_key(tmp_path):
    path = _edit_payload(tmp_path, lambda x: x["config"]["model"].__setitem__("hidden_size", "big"))
    with pytest.raises(ActivityError, match="model.hidden_size") as ei:
        load_checkpoint(path)
    assert str(path) in str(ei.value)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda x: x.pop("config"), id="no-config"),
        pytest.param(lambda x: x.pop("state_dict"), id="no-state-dict"),
        pytest.param(lambda x: x.pop("classes"), id="no-classes"),
        pytest.param(lambda x: x.__setitem__("feature_dim", D + 2), id="feature-dim-mismatch"),
        pytest.param(lambda x: x.__setitem__("classes", CLASSES[:2]), id="classes-mismatch"),
    ],
)
def test_damaged_checkpoint_is_a_one_line_activity_error(tmp_path, edit):
    path = _edit_payload(tmp_path, edit)
    with pytest.raises(ActivityError) as ei:
        load_checkpoint(path)
    assert str(path) in str(ei.value) and "\n" not in str(ei.value)


def test_a_checkpoint_written_before_the_package_was_split_loads_and_predicts_the_same():
    """tests/data/checkpoint-0.1.0.pt: written by activity 0.1.0 as it was before the modules moved into
    subpackages (a 2-model ensemble of small LSTMs over 1280-d features), with its probabilities for a
    seeded input; loading it must give the same model."""
    from activity.temporal.train import predict_features

    data = Path(__file__).parent / "data"
    ckpt = load_checkpoint(data / "checkpoint-0.1.0.pt")
    assert ckpt.classes == ["a", "b", "c"] and ckpt.feature_dim == 1280 and ckpt.config.model.ensemble == 2
    x = torch.randn(2, 4, 1280, generator=torch.Generator().manual_seed(1))
    probs, _ = predict_features(ckpt.model, x, 4)
    np.testing.assert_allclose(probs.numpy(), np.load(data / "checkpoint-0.1.0-probs.npy"), rtol=0, atol=1e-6)
