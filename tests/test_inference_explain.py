"""Per-frame explanations: attention weights, occlusion, bad input (the drawn strip: tests/test_inference_visualize.py)."""

from __future__ import annotations

import dataclasses
import json
import math
from functools import lru_cache

import cv2
import numpy as np
import pytest
import torch

import activity.inference.explain
import activity.inference.recognizer
from activity.config import Config
from activity.data.sampling import segment_indices
from activity.data.synthetic import make_order_dataset
from activity.errors import ActivityError, ConfigError
from activity.inference.explain import Explanation, explain, save_explanation
from activity.inference.visualize import draw_explanation
from activity.registry import EXPLAIN_METHODS
from activity.temporal.models import build_temporal_model
from activity.temporal.train import select_views

try:
    from utils import TWO_STREAM, random_checkpoint, run_cli
except ImportError:  # tests/ imported as a package
    from tests.utils import TWO_STREAM, random_checkpoint, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T, D = 6, 1280
VIDEO_FRAMES, FPS, SIZE = 12, 12.0, (64, 48)  # 64x48 clips: a 120 px tile is 160 px wide


@pytest.fixture(scope="module", autouse=True)
def one_backbone():
    """Every recognizer of this module shares one backbone (building one takes about a second)."""
    original = activity.inference.recognizer.create_backbone
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(activity.inference.recognizer, "create_backbone", lru_cache(maxsize=None)(original))
        yield


def make_config(**model) -> Config:
    cfg = Config()
    cfg.features.streams = ["appearance"]  # one stream: these features are synthetic
    cfg.model.pooled_members = False  # the BiLSTM alone (tests/test_features_motion.py trains a fusion)
    cfg.set("features.image_size", 64)
    cfg.set("features.num_frames", T)
    for k, v in model.items():
        cfg.set(k if "." in k else f"model.{k}", v)
    return cfg


def load(path):
    return activity.inference.recognizer.load_model(path, cache_dir=False, workers=0)


def write_checkpoint(path, cfg: Config, model=None, seed: int = 0):
    random_checkpoint(cfg, ["a", "b"], D, model=model, seed=seed, path=path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = make_order_dataset(tmp_path_factory.mktemp("clips"), classes=("moving_right",), clips_per_class=1,
                              num_frames=VIDEO_FRAMES, size=SIZE, fps=FPS)
    return root / "moving_right" / "moving_right_000.mp4"


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    cfg = make_config(hidden_size=16, projection=32)
    return load(write_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", cfg))


def probs_of(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        logits, _ = model(torch.from_numpy(np.asarray(x, np.float32))[None])
    return logits.softmax(1)[0].double().numpy()


# ---------------------------------------------------------------- attention


def test_attention_importance_is_the_models_pooling_weights(recognizer, clip):
    expl = explain(recognizer, clip, method="attention")
    assert isinstance(expl, Explanation) and expl.method == "attention" and expl.note is None
    assert expl.frames.shape == (T, SIZE[1], SIZE[0], 3) and expl.frames.dtype == np.uint8
    np.testing.assert_array_equal(expl.indices, segment_indices(VIDEO_FRAMES, T))
    np.testing.assert_allclose(expl.times, expl.indices / FPS)
    assert expl.importance.shape == (T,) and expl.features.shape == (T, D)
    assert expl.importance.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.all(expl.importance >= 0)

    with torch.inference_mode():
        logits, weights = recognizer.checkpoint.model(torch.from_numpy(expl.features)[None])
    np.testing.assert_allclose(expl.importance, weights[0].numpy(), rtol=0, atol=1e-7)
    assert not np.allclose(expl.importance, 1 / T, atol=1e-4)  # a real attention, not uniform weights
    probs = logits.softmax(1)[0].numpy()
    assert expl.label == expl.predicted == ["a", "b"][int(probs.argmax())]
    assert expl.probability == pytest.approx(float(probs.max()), abs=1e-6)
    assert expl.as_dict()["frames"][0]["index"] == int(expl.indices[0])


def test_features_and_probabilities_are_those_predict_uses(recognizer, clip):
    expl = explain(recognizer, clip, method="attention")
    cached = recognizer.features([clip]).features[clip]  # the prediction path: decode, extract, float16
    np.testing.assert_allclose(expl.features, cached.astype(np.float32), rtol=0, atol=1e-2)
    top = dict(recognizer.predict(clip, top_k=2))
    assert top[expl.label] == pytest.approx(expl.probability, abs=1e-4)


def test_attention_importances_are_the_same_for_every_class_and_the_explanation_says_so(recognizer, clip):
    a, b = (explain(recognizer, clip, method="attention", target=c) for c in ("a", "b"))
    np.testing.assert_array_equal(a.importance, b.importance)  # the pooling comes before the head
    assert a.probability != b.probability
    for expl in (a, b):
        assert expl.class_independent and expl.as_dict()["class_independent"] is True
        assert "same for every class" in expl.caveat and "--method occlusion" in expl.caveat
    occ = explain(recognizer, clip, method="occlusion", target="a")
    assert not occ.class_independent and occ.caveat is None and occ.as_dict()["class_independent"] is False
    # the picture says it too: a line under the tiles that the same strip without a target lacks
    assert draw_explanation(a).shape[0] > draw_explanation(dataclasses.replace(a, target_given=False)).shape[0]
    plain = explain(recognizer, clip, method="attention")  # no target: nothing to warn about
    assert plain.class_independent and plain.caveat is None and not plain.target_given


def test_explain_command_says_attention_ignores_the_target(recognizer, clip, tmp_path):
    ckpt = write_checkpoint(tmp_path / "model.pt", make_config(hidden_size=16, projection=32))
    got = run_cli(["explain", ckpt, clip, "--out", tmp_path / "a.png", "--target", "b", "--json"])
    assert got.code == 0, got.err
    assert "note: attention weights are the same for every class; --target only changes the probability shown" in got.err
    assert json.loads(got.out)["class_independent"] is True
    got = run_cli(["explain", ckpt, clip, "--out", tmp_path / "o.png", "--target", "b", "--json", "--method", "occlusion"])
    assert got.code == 0 and "same for every class" not in got.err
    assert json.loads(got.out)["class_independent"] is False
    got = run_cli(["explain", ckpt, clip, "--out", tmp_path / "n.png", "--method", "attention"])  # no --target
    assert got.code == 0 and got.err == ""


# ---------------------------------------------------------------- occlusion


def test_occlusion_is_the_drop_when_one_step_becomes_the_clip_mean(recognizer, clip):
    expl = explain(recognizer, clip, method="occlusion")
    assert expl.method == "occlusion" and expl.importance.shape == (T,)
    model, x = recognizer.checkpoint.model, expl.features
    c = expl.classes.index(expl.label)
    p_clip = probs_of(model, x)
    assert expl.probability == pytest.approx(p_clip[c], abs=1e-6)
    for t in range(T):  # by hand, one clip at a time
        occluded = x.copy()
        occluded[t] = x.mean(0)
        assert expl.importance[t] == pytest.approx(p_clip[c] - probs_of(model, occluded)[c], abs=1e-6)

    other = explain(recognizer, clip, method="occlusion", target=1 - c)
    assert other.label == expl.classes[1 - c] and other.target_given
    np.testing.assert_allclose(other.importance, -expl.importance, atol=1e-6)  # two classes: one's drop is the other's rise


def _one_step_model(cfg: Config, features: np.ndarray, k: int) -> torch.nn.Module:
    """An attention LSTM whose output depends on step ``k`` only, built by setting its weights.

    * Forward direction, units 1..H-1: no recurrent weights, forget gate shut,
      frame-difference inputs zeroed: each step's output reads that step only.
    * Forward unit 0 ignores the input and counts: its cell grows by 0.1 a
      step, so its output ``tanh(0.1 (t + 1))`` tells the step's position.
    * The backward direction is all zero (outputs 0).
    * Attention: a bump of two tanh units around the counter value of step
      ``k``, scaled so that step ``k`` gets all the weight (others ~e^-40).
    * Head: reads the pooled state (= step ``k``'s output); its decision
      boundary lies halfway between the clip's state and the state with step
      ``k`` replaced by the clip's mean feature (so occluding ``k`` flips it).
    """
    torch.manual_seed(1)
    m = build_temporal_model(cfg.model, D, 2).eval()
    h, proj = cfg.model.hidden_size, cfg.model.projection
    lstm = m.lstm
    gate = {"i": slice(0, h), "f": slice(h, 2 * h), "g": slice(2 * h, 3 * h), "o": slice(3 * h, 4 * h)}
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.endswith("_reverse"):
                p.zero_()
        lstm.weight_hh_l0.zero_()
        lstm.bias_hh_l0.zero_()
        lstm.weight_ih_l0[:, proj:] = 0  # frame differences involve step t-1
        lstm.weight_ih_l0[gate["f"]] = 0
        lstm.bias_ih_l0[gate["f"]] = -30.0
        for g in "ifgo":  # unit 0: the position counter
            lstm.weight_ih_l0[gate[g].start] = 0
        lstm.bias_ih_l0[gate["i"].start] = lstm.bias_ih_l0[gate["f"].start] = lstm.bias_ih_l0[gate["o"].start] = 30.0
        lstm.bias_ih_l0[gate["g"].start] = math.atanh(0.1)
        counter = np.tanh(0.1 * (np.arange(T) + 1))
        lo, hi = (counter[k - 1] + counter[k]) / 2, (counter[k] + counter[k + 1]) / 2
        first, second = m.attention[0], m.attention[2]
        first.weight.zero_(), first.bias.zero_(), second.weight.zero_()
        first.weight[0, 0] = first.weight[1, 0] = 200.0
        first.bias[0], first.bias[1] = -200.0 * lo, -200.0 * hi
        second.weight[0, 0], second.weight[0, 1] = 20.0, -20.0

        occluded = features.copy()
        occluded[k] = features.mean(0)
        pooled = []
        hook = m.head.register_forward_hook(lambda mod, inp, out: pooled.append(inp[0]))
        _, w = m(torch.from_numpy(np.stack([features, occluded])))
        hook.remove()
        assert float(np.delete(w.numpy(), k, axis=1).max()) < 1e-12  # the attention sits on step k
        p_clip, p_occ = pooled[0]
        d = p_clip - p_occ
        scale = 8.0 / float(d @ d)  # logit of class "a": +4 on the clip, -4 with step k occluded
        m.head.weight.zero_(), m.head.bias.zero_()
        m.head.weight[0] = scale * d
        m.head.bias[0] = -scale * float(d @ (p_clip + p_occ) / 2)
    return m


def test_a_model_that_reads_one_step_gets_that_step_as_top_occlusion(recognizer, clip, tmp_path):
    k = 3
    cfg = make_config(hidden_size=8, projection=16, ensemble=1)
    base = explain(recognizer, clip, method="occlusion")  # same backbone and sampling: same features
    model = _one_step_model(cfg, base.features, k)
    rec = load(write_checkpoint(tmp_path / "one_step.pt", cfg, model))

    expl = explain(rec, clip, method="occlusion")
    np.testing.assert_array_equal(expl.features, base.features)
    assert expl.label == "a" and expl.probability == pytest.approx(1 / (1 + math.exp(-4)), abs=1e-4)
    assert expl.top_frame == k
    assert expl.importance[k] == pytest.approx(math.tanh(2), abs=1e-3)  # sigmoid(4) - sigmoid(-4)
    assert np.abs(np.delete(expl.importance, k)).max() < 1e-6  # nothing else matters to this model

    att = explain(rec, clip, method="attention")
    assert att.importance[k] > 1 - 1e-6


def test_uniform_pooling_falls_back_to_occlusion_with_a_note(recognizer, clip, tmp_path):
    for name, model_cfg in [("mean", {"temporal": "mean"}), ("meanpool", {"pooling": "mean", "hidden_size": 8, "projection": 16})]:
        rec = load(write_checkpoint(tmp_path / f"{name}.pt", make_config(**model_cfg)))
        expl = explain(rec, clip, method="attention")
        assert expl.method == "occlusion" and "occlusion" in expl.note
        explicit = explain(rec, clip, method="occlusion")
        assert explicit.note is None
        np.testing.assert_allclose(expl.importance, explicit.importance, atol=1e-9)
        assert not np.allclose(expl.importance, expl.importance[0])  # unlike the (uniform) pooling weights


def test_with_several_views_the_frames_are_the_centre_views_predict_uses(clip, tmp_path):
    rec = load(write_checkpoint(tmp_path / "views.pt", make_config(**{"features.views": 3, "hidden_size": 8, "projection": 16})))
    expl = explain(rec, clip, method="occlusion")
    dense = segment_indices(VIDEO_FRAMES, 3 * T)
    np.testing.assert_array_equal(expl.indices, dense[segment_indices(3 * T, T)])
    cached = torch.from_numpy(rec.features([clip]).features[clip].astype(np.float32))[None]  # (1, 3T, D)
    np.testing.assert_allclose(expl.features, select_views(cached, T, random=False)[0].numpy(), rtol=0, atol=1e-2)


# ---------------------------------------------------------------- bad input


def test_missing_video_is_an_error_naming_the_file(recognizer, tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(ActivityError, match="nope.mp4"):
        explain(recognizer, missing)


@pytest.mark.parametrize("method", EXPLAIN_METHODS.names())
def test_every_registered_method_explains_the_prediction_frame_by_frame(recognizer, clip, method):
    expl = explain(recognizer, clip, method=method)  # an attention model: no method falls back
    assert expl.method == method and expl.note is None and expl.label == expl.predicted
    assert expl.importance.shape == (T,) and np.isfinite(expl.importance).all() and np.abs(expl.importance).max() > 0
    assert expl.probability == pytest.approx(dict(recognizer.predict(clip, top_k=2))[expl.label], abs=1e-4)


def test_unknown_method_and_target(recognizer, clip):
    with pytest.raises(ConfigError) as e:
        explain(recognizer, clip, method="gradcam")
    assert str(e.value) == "unknown explanation method 'gradcam'; choose from attention, occlusion"
    with pytest.raises(ActivityError, match="'zebra'"):
        explain(recognizer, clip, target="zebra")
    with pytest.raises(ActivityError, match="out of range"):
        explain(recognizer, clip, method="occlusion", target=5)
    assert explain(recognizer, clip, target="b").label == "b"


# ---------------------------------------------------------------- a two-stream model (features.motion)


def test_occlusion_of_a_two_stream_model_covers_both_streams_and_draws_the_strip(trained_run, tmp_path):
    run = trained_run(**TWO_STREAM)
    model = load(run.ckpt)
    clip = run.data / "moving_right" / "moving_right_000.mp4"
    expl = explain(model, clip, method="occlusion")
    t, dim = model.spec.num_frames, model.checkpoint.feature_dim
    assert expl.importance.shape == (t,) and expl.features.shape == (t, dim) and model.spec.descriptor_dim == 80
    cached = model.features([clip]).features[clip]  # extraction's appearance and motion
    np.testing.assert_allclose(expl.features, cached.astype(np.float32), rtol=0, atol=1e-2)
    assert dict(model.predict(clip, top_k=2))[expl.label] == pytest.approx(expl.probability, abs=1e-4)
    c = expl.classes.index(expl.label)
    occluded = expl.features.copy()
    occluded[0] = expl.features.mean(0)  # the whole step, motion included
    assert expl.importance[0] == pytest.approx(expl.probability - probs_of(model.checkpoint.model, occluded)[c], abs=1e-6)
    out = save_explanation(expl, tmp_path / "strip.png")
    assert cv2.imread(str(out)) is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
