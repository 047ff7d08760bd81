"""Temporal models: shapes, pooling weights, padding, frame differences."""

from __future__ import annotations

import pytest
import torch

from activity.config import ModelConfig
from activity.temporal.models import (
    Ensemble,
    LSTMClassifier,
    MeanClassifier,
    build_temporal_model,
    masked_softmax,
    temporal_difference,
    valid_mask,
)

D, C = 12, 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(kind: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    overrides.setdefault("ensemble", 1)
    cfg = ModelConfig(temporal=kind, hidden_size=16, **overrides)
    model = build_temporal_model(cfg, D, C)
    # non-trivial standardisation, so that the buffers take part
    model.norm.set_stats(torch.linspace(-1, 1, D), torch.linspace(0.5, 2, D))
    return model.eval()


MODELS = [
    pytest.param(("lstm", {}), id="lstm-attention-diff"),
    pytest.param(("lstm", {"pooling": "mean"}), id="lstm-mean-pool"),
    pytest.param(("lstm", {"frame_differences": False}), id="lstm-no-diff"),
    pytest.param(("lstm", {"num_layers": 2}), id="lstm-2-layers"),
    pytest.param(("mean", {}), id="mean"),
]


@pytest.fixture(params=MODELS)
def model(request):
    kind, overrides = request.param
    return make(kind, **overrides)


def test_build_picks_the_class():
    assert isinstance(make("lstm"), LSTMClassifier)
    assert isinstance(make("mean"), MeanClassifier)


def test_shapes_and_weights_without_lengths(model):
    x = torch.randn(3, 7, D)
    logits, w = model(x)
    assert logits.shape == (3, C)
    assert w.shape == (3, 7)
    assert torch.isfinite(logits).all()
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(1), torch.ones(3))


def test_weights_sum_to_one_over_valid_steps_and_zero_on_padding(model):
    lengths = torch.tensor([7, 3, 1, 5])
    x = torch.randn(4, 7, D)
    logits, w = model(x, lengths)
    assert logits.shape == (4, C)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(w.sum(1), torch.ones(4))
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(w[b, n:] == 0), f"row {b}: weight on padding"
        assert torch.all(w[b, :n] > 0)


def test_mean_pooling_weights_are_uniform():
    for m in (make("mean"), make("lstm", pooling="mean")):
        _, w = m(torch.randn(2, 6, D), torch.tensor([6, 4]))
        torch.testing.assert_close(w[0], torch.full((6,), 1 / 6))
        torch.testing.assert_close(w[1], torch.tensor([0.25] * 4 + [0.0] * 2))


def test_padding_does_not_change_the_logits(model):
    torch.manual_seed(1)
    seqs = [torch.randn(n, D) for n in (5, 2, 8)]
    t = 8
    x = torch.full((3, t, D), 1e3)  # garbage padding: huge values
    x[:, :, ::2] = -1e3
    for b, s in enumerate(seqs):
        x[b, : len(s)] = s
    lengths = torch.tensor([len(s) for s in seqs])
    logits, w = model(x, lengths)
    for b, s in enumerate(seqs):
        alone, w_alone = model(s[None])
        torch.testing.assert_close(logits[b], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(w[b, : len(s)], w_alone[0], atol=1e-6, rtol=1e-5)
    # other garbage gives the same answer
    x2 = x.clone()
    for b, s in enumerate(seqs):
        x2[b, len(s) :] = torch.randn(t - len(s), D) * 50
    torch.testing.assert_close(model(x2, lengths)[0], logits)


def test_lengths_equal_to_t_match_no_lengths(model):
    x = torch.randn(2, 6, D)
    torch.testing.assert_close(model(x, torch.tensor([6, 6]))[0], model(x)[0], atol=1e-5, rtol=1e-5)


def test_batch_rows_are_independent(model):
    x = torch.randn(4, 5, D)
    full, _ = model(x)
    for b in range(4):
        torch.testing.assert_close(model(x[b : b + 1])[0][0], full[b], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("projection, step", [(0, D), (7, 7)])
def test_frame_differences_changes_the_lstm_input(projection, step):
    on = make("lstm", frame_differences=True, projection=projection)
    off = make("lstm", frame_differences=False, projection=projection)
    assert on.lstm.input_size == 2 * step
    assert off.lstm.input_size == step
    assert on.frame_differences and not off.frame_differences
    for m in (on, off):
        logits, _ = m(torch.randn(2, 4, D), torch.tensor([4, 2]))
        assert logits.shape == (2, C)


def test_frame_differences_input_is_what_the_lstm_sees():
    """With differences on, the LSTM gets [p, p_t - p_{t-1}] of the projected features p; check via a hook."""
    m = make("lstm", frame_differences=True, projection=0)
    seen = {}

    def hook(mod, inp, out):
        seen["x"] = inp[0]

    m.lstm.register_forward_hook(hook)
    x = torch.randn(1, 4, D)
    m(x)
    z = m.norm(x)
    torch.testing.assert_close(seen["x"][..., :D], z)
    torch.testing.assert_close(seen["x"][0, 0, D:], torch.zeros(D))
    torch.testing.assert_close(seen["x"][0, 1:, D:], z[0, 1:] - z[0, :-1])


def test_projection_feeds_the_lstm_projected_features():
    m = make("lstm", frame_differences=True, projection=5)
    seen = {}
    m.lstm.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0]))
    x = torch.randn(1, 4, D)
    m(x)
    p = m.project(m.norm(x))
    assert p.shape == (1, 4, 5)
    torch.testing.assert_close(seen["x"][..., :5], p)
    torch.testing.assert_close(seen["x"][0, 1:, 5:], p[0, 1:] - p[0, :-1])


def test_mean_classifier_ignores_order_and_lstm_does_not():
    x = torch.randn(1, 6, D)
    rev = x.flip(1)
    mean = make("mean")
    torch.testing.assert_close(mean(x)[0], mean(rev)[0], atol=1e-5, rtol=1e-5)
    lstm = make("lstm")
    assert not torch.allclose(lstm(x)[0], lstm(rev)[0], atol=1e-4)


def test_standardisation_buffers():
    m = make("mean")
    names = dict(m.named_buffers())
    assert "norm.feature_mean" in names and "norm.feature_std" in names
    m.norm.set_stats(torch.zeros(D), torch.zeros(D))  # std is clamped, never divides by zero
    assert torch.all(m.norm.feature_std >= 1e-3)
    assert torch.isfinite(m(torch.randn(1, 3, D))[0]).all()


def test_valid_mask_and_helpers():
    mask = valid_mask(torch.tensor([2, 0, 3]), 3, 3, torch.device("cpu"))
    assert mask.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    assert valid_mask(None, 2, 3, torch.device("cpu")).all()

    w = masked_softmax(torch.tensor([[1.0, 2.0, 50.0]]), torch.tensor([[True, True, False]]))
    torch.testing.assert_close(w, torch.tensor([[0.2689414, 0.7310586, 0.0]]))

    x = torch.arange(8.0).reshape(1, 4, 2) ** 2
    d = temporal_difference(x, torch.tensor([[True, True, True, False]]))
    torch.testing.assert_close(d[0, 0], torch.zeros(2))
    torch.testing.assert_close(d[0, 1:3], x[0, 1:3] - x[0, 0:2])
    torch.testing.assert_close(d[0, 3], torch.zeros(2))


def test_training_mode_dropout_is_active_and_eval_is_deterministic():
    m = make("lstm", dropout=0.5, input_dropout=0.5)
    x = torch.randn(2, 5, D)
    torch.testing.assert_close(m(x)[0], m(x)[0])
    m.train()
    torch.manual_seed(0)
    a = m(x)[0]
    b = m(x)[0]
    assert not torch.allclose(a, b)


def test_gradients_flow():
    m = make("lstm").train()
    logits, _ = m(torch.randn(3, 4, D), torch.tensor([4, 2, 3]))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert m.lstm.weight_ih_l0.grad.abs().sum() > 0


def test_ensemble_averages_its_members_probabilities():
    torch.manual_seed(0)
    ens = build_temporal_model(ModelConfig(temporal="lstm", hidden_size=8, projection=8, ensemble=3), D, C).eval()
    assert isinstance(ens, Ensemble) and len(ens.members) == 3
    assert ens.attention is ens.members[0].attention is not None
    x, lengths = torch.randn(4, 6, D), torch.tensor([6, 3, 1, 5])
    logits, weights = ens(x, lengths)
    outs = [m(x, lengths) for m in ens.members]
    torch.testing.assert_close(logits.softmax(1), torch.stack([o[0].softmax(1) for o in outs]).mean(0))
    torch.testing.assert_close(weights, torch.stack([o[1] for o in outs]).mean(0))
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert (weights[2, 1:] == 0).all()  # padding still gets no weight
    # members differ (independent initialisation), so the average is not any one of them
    assert not torch.allclose(outs[0][0].softmax(1), outs[1][0].softmax(1))
    mean_ens = build_temporal_model(ModelConfig(temporal="mean", ensemble=2), D, C)
    assert mean_ens.attention is None
