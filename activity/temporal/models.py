"""Temporal models: from a sequence of frame features to class logits.

Both models take features ``(B, T, D)`` and optional valid lengths ``(B,)``
and return ``(logits (B, C), weights (B, T))``, where ``weights`` says how much
each time step contributed to the pooled representation (attention weights,
or uniform weights for mean pooling; zero on padding). Padded steps never
reach the classifier: the LSTM runs on packed sequences and pooling is masked.

The LSTM can also read each step's difference from the previous step
(``frame_differences``), which cancels what does not move, such as the scene.

Features are standardised inside the model with statistics from the training
set (buffers ``feature_mean`` and ``feature_std``), so a checkpoint carries them.

With ``ensemble: N`` the model is an :class:`Ensemble` of N such models
(trained from different seeds) whose class probabilities are averaged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from activity.config import ModelConfig, check_members, lr_member, member_stream
from activity.registry import TEMPORAL_MODELS


def valid_mask(lengths: torch.Tensor | None, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    """Boolean ``(B, T)``: true on valid steps."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 of ``(B, T)`` scores, zero where ``mask`` is false."""
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=1)


def temporal_difference(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each step minus the previous one, ``(B, T, D)``; zero at the first step and on padding."""
    d = torch.zeros_like(x)
    d[:, 1:] = x[:, 1:] - x[:, :-1]
    return d * mask[:, :, None]


class _Standardize(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.feature_mean) / self.feature_std


class TemporalModel(nn.Module):
    """What every temporal model is: standardised frame features ``(B, T, D)`` (with optional valid
    lengths ``(B,)``) -> ``(logits (B, C), per-step pooling weights (B, T))``."""

    norm: _Standardize

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise inputs with these per-dimension statistics ``(D,)`` of the training features."""
        self.norm.set_stats(mean, std)


class MeanClassifier(TemporalModel):
    """The baseline: average the frame features over valid steps, then a linear layer."""

    def __init__(self, in_dim: int, num_classes: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm = _Standardize(in_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        mask = valid_mask(lengths, b, t, x.device)
        weights = mask.float() / mask.sum(1, keepdim=True).clamp_min(1)
        pooled = torch.einsum("bt,btd->bd", weights, self.norm(x))
        return self.head(self.dropout(pooled)), weights


class LSTMClassifier(TemporalModel):
    """Bidirectional LSTM over frame features, pooled over valid steps, then a linear head."""

    def __init__(self, in_dim: int, num_classes: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm = _Standardize(in_dim)
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        self.frame_differences = cfg.frame_differences
        self.project = nn.Linear(in_dim, cfg.projection) if cfg.projection else nn.Identity()
        step_dim = cfg.projection or in_dim
        self.lstm = nn.LSTM(
            2 * step_dim if cfg.frame_differences else step_dim,
            cfg.hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        out = 2 * cfg.hidden_size
        self.pooling = cfg.pooling
        # No bias on the score: softmax ignores a shift, so its gradient would be rounding noise.
        score = nn.Sequential(nn.Linear(out, out // 2), nn.Tanh(), nn.Linear(out // 2, 1, bias=False))
        self.attention = score if cfg.pooling == "attention" else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(out, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        x = self.project(self.input_dropout(self.norm(x)))
        mask = valid_mask(lengths, b, t, x.device)
        if self.frame_differences:
            x = torch.cat([x, temporal_difference(x, mask)], dim=-1)
        if lengths is None:
            h, _ = self.lstm(x)
        else:
            packed = pack_padded_sequence(x, lengths.cpu().clamp_min(1), batch_first=True, enforce_sorted=False)
            h, _ = self.lstm(packed)
            h, _ = pad_packed_sequence(h, batch_first=True, total_length=t)
        if self.attention is not None:
            weights = masked_softmax(self.attention(h).squeeze(-1), mask)
        else:
            weights = mask.float() / mask.sum(1, keepdim=True).clamp_min(1)
        pooled = torch.einsum("bt,btd->bd", weights, h)
        return self.head(self.dropout(pooled)), weights


def pooled_statistics(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and (population) std over valid steps of the features and of their step-to-step differences:
    ``(B, T, D)`` -> ``(B, 4 * D)``, as :func:`activity.temporal.baselines.pooled_statistics` computes them
    for full-length clips (a clip of one step has zero differences)."""
    def mean_std(v: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        w = m.float()[:, :, None]
        n = w.sum(1).clamp_min(1)
        mean = (v * w).sum(1) / n
        std = (((v - mean[:, None]) ** 2 * w).sum(1) / n).sqrt()
        return torch.cat([mean, std], dim=1)

    d = x[:, 1:] - x[:, :-1] if x.shape[1] > 1 else torch.zeros_like(x)
    dm = mask[:, 1:] & mask[:, :-1] if x.shape[1] > 1 else mask
    return torch.cat([mean_std(x, mask), mean_std(d, dm)], dim=1)


class PooledLogistic(TemporalModel):
    """A baseline as a temporal model: a fixed pooling of the frame features (``pooled_lr``: mean and std
    over time of the features and of their differences; ``middle_lr``: the middle step), standardised,
    then a linear layer, with the weights of a fitted :class:`~activity.temporal.baselines.LogisticBaseline`
    (:meth:`from_baseline`). So what ``cv`` finds best can be trained, saved, predicted with and exported."""

    def __init__(self, in_dim: int, num_classes: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.pooling = cfg.temporal
        width = 4 * in_dim if cfg.temporal == "pooled_lr" else in_dim
        self.norm = _Standardize(width)
        self.head = nn.Linear(width, num_classes)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Nothing: the pooled numbers are standardised with the logistic regression's own scaler."""

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pooled (B, P), per-step weights (B, T))``."""
        if self.pooling == "pooled_lr":
            return pooled_statistics(x, mask), mask.float() / mask.sum(1, keepdim=True).clamp_min(1)
        middle = (mask.sum(1) // 2).long()
        weights = torch.nn.functional.one_hot(middle, x.shape[1]).float()
        return torch.einsum("bt,btd->bd", weights, x), weights

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        z, weights = self.pool(x.float(), valid_mask(lengths, b, t, x.device))
        return self.head(self.norm(z)), weights

    @classmethod
    def from_baseline(cls, baseline: Any, in_dim: int, num_classes: int, cfg: ModelConfig) -> "PooledLogistic":
        """The module computing ``baseline.predict_proba`` (a fitted LogisticBaseline of ``cfg.temporal``,
        read through its :meth:`~activity.temporal.baselines.LogisticBaseline.linear_form`) as logits;
        classes the baseline never saw get a logit of -1e4 (probability 0, as it gives them)."""
        mean, scale, weight, bias, seen = baseline.linear_form()
        model = cls(in_dim, num_classes, cfg)
        w = torch.zeros(num_classes, model.head.in_features)
        b = torch.full((num_classes,), -1e4)
        idx = torch.as_tensor(seen, dtype=torch.long)
        w[idx], b[idx] = torch.as_tensor(weight).float(), torch.as_tensor(bias).float()
        with torch.no_grad():
            model.norm.feature_mean.copy_(torch.as_tensor(mean))  # as the scaler has them: no clamping
            model.norm.feature_std.copy_(torch.as_tensor(scale))
            model.head.weight.copy_(w)
            model.head.bias.copy_(b)
        return model.eval()


#: The temporal models that are fitted logistic regressions (:class:`PooledLogistic`): no epochs, no ensemble, no fusion.
POOLED_MODELS = ("pooled_lr", "middle_lr")

TEMPORAL_MODELS.add("lstm", LSTMClassifier)
TEMPORAL_MODELS.add("mean", MeanClassifier)
for _name in POOLED_MODELS:
    TEMPORAL_MODELS.add(_name, PooledLogistic)


class Ensemble(nn.Module):
    """Several temporal models whose class probabilities are averaged.

    ``forward`` returns the log of the mean probability ``(B, C)`` (so a
    softmax of it gives the averaged probabilities) and the mean pooling
    weights ``(B, T)``.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    @property
    def attention(self) -> nn.Module | None:
        """The first member's attention pooling (None when the members pool uniformly)."""
        return getattr(self.members[0], "attention", None)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Every member standardises with these training statistics ``(D,)``."""
        for m in self.members:
            m.set_feature_stats(mean, std)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m(x, lengths) for m in self.members]
        probs = torch.stack([logits.softmax(1) for logits, _ in outs]).mean(0)
        return probs.clamp_min(1e-12).log(), torch.stack([w for _, w in outs]).mean(0)


class Fusion(nn.Module):
    """Member models, each reading one stream's columns of the features, whose class log-probabilities are
    mixed with weights that sum to one: ``sum_i weights[i] * log_softmax(member_i(x[..., columns_i]))``.

    The members are named by their stream (``appearance``, ``motion``, ``pose``: a BiLSTM or an ensemble of
    them) and, for each stream's pooled-statistics logistic regression (:class:`PooledLogistic`),
    ``<stream>_lr``. ``weights`` (a buffer ``(members,)``, saved with the model) is chosen by training on
    out-of-fold predictions (:func:`activity.temporal.train.choose_fusion_weights`). ``forward`` takes
    features ``(B, T, D)`` (every stream side by side) and returns the mixed log-probabilities ``(B, C)``
    and the mixed per-step pooling weights ``(B, T)``. A checkpoint of the two-stream model this
    replaced (``appearance``, ``motion`` and one appearance ``weight``) loads as such a fusion.
    """

    def __init__(self, members: Mapping[str, nn.Module], columns: Mapping[str, tuple[int, int]]) -> None:
        super().__init__()
        self.names = tuple(members)
        for name, member in members.items():
            self.add_module(name, member)
        self.columns = {name: tuple(columns[name]) for name in self.names}
        self.register_buffer("weights", torch.full((len(self.names),), 1 / len(self.names)))
        self._register_load_state_dict_pre_hook(_two_stream_weight)

    def member(self, name: str) -> nn.Module:
        """The member model called ``name``."""
        return getattr(self, name)

    def part(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Member ``name``'s columns of features ``(..., D)``."""
        lo, hi = self.columns[name]
        return x[..., lo:hi]

    def weight_of(self) -> dict[str, float]:
        """Each member's weight."""
        return {n: float(w) for n, w in zip(self.names, self.weights)}

    @property
    def attention(self) -> nn.Module | None:
        """The appearance model's attention pooling (None when it pools uniformly)."""
        return getattr(self.member(self.names[0]), "attention", None)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Each member standardises with its columns of these statistics ``(D,)`` (a logistic
        regression member keeps its own)."""
        for name in self.names:
            lo, hi = self.columns[name]
            self.member(name).set_feature_stats(mean[lo:hi], std[lo:hi])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs, steps = 0.0, 0.0
        for name, w in zip(self.names, self.weights):
            logits, pooled = self.member(name)(self.part(name, x), lengths)
            log_probs = log_probs + w * logits.log_softmax(1)
            steps = steps + w * pooled
        return log_probs, steps  # type: ignore[return-value]


def _two_stream_weight(state: dict[str, Any], prefix: str, *args: Any) -> None:
    """A two-stream checkpoint's appearance ``weight`` as the ``weights`` of its two members."""
    old = state.pop(prefix + "weight", None)
    if old is not None and prefix + "weights" not in state:
        state[prefix + "weights"] = torch.stack([old, 1 - old])


def fusion_members(cfg: ModelConfig, streams: Sequence[str]) -> list[str]:
    """The members of a fusion over ``streams`` (config names, appearance first): each stream's BiLSTM (named
    as the stream) and, with ``cfg.pooled_members``, each stream's logistic regression (:func:`lr_member`),
    BiLSTMs first; only those ``cfg.members`` names where it names any (a regression may be named without
    ``pooled_members``).

    Raises:
        ConfigError: ``cfg.members`` names what is no member of a fusion over these streams.
    """
    if not cfg.members:
        return [*streams, *(lr_member(s) for s in streams if cfg.pooled_members)]
    chosen = check_members(cfg.members, streams)
    return [m for m in [*streams, *(lr_member(s) for s in streams)] if m in chosen]


def is_fusion(cfg: ModelConfig, streams: Sequence[Any]) -> bool:
    """Whether an ``lstm`` over ``streams`` is a :class:`Fusion`: several streams, the pooled members, or
    chosen members (``model.members``)."""
    return cfg.temporal == "lstm" and len(streams) > 0 and (len(streams) > 1 or cfg.pooled_members or bool(cfg.members))


def build_temporal_model(cfg: ModelConfig, in_dim: int, num_classes: int,
                         streams: Sequence[tuple[str, int]] = ()) -> nn.Module:
    """The temporal model named by ``cfg.temporal``; an :class:`Ensemble` of ``cfg.ensemble`` of them if more than one.

    ``streams``: ``(name, width)`` of each stream the ``in_dim`` numbers a step are made of, in order
    (:func:`activity.features.streams.stream_widths`); empty: one model over all of them. An ``lstm`` over several
    streams, with ``cfg.pooled_members`` or with ``cfg.members`` is a :class:`Fusion` of the
    :func:`fusion_members`: a model per stream and a :class:`PooledLogistic` per stream; a ``mean`` model
    reads every stream together.

    Raises:
        ConfigError: ``cfg.members`` names what is no member of the fusion.
    """
    if cfg.temporal in POOLED_MODELS:
        return _build_one(cfg, in_dim, num_classes)
    if is_fusion(cfg, streams):
        members: dict[str, nn.Module] = {}
        columns: dict[str, tuple[int, int]] = {}
        start = 0
        for name, width in streams:
            columns[name] = columns[lr_member(name)] = (start, start + width)
            start += width
        widths = dict(streams)
        for name in fusion_members(cfg, [n for n, _ in streams]):
            if name in widths:
                members[name] = build_temporal_model(cfg, widths[name], num_classes)
            else:
                width = widths[member_stream(name)]
                members[name] = PooledLogistic(width, num_classes, replace(cfg, temporal="pooled_lr"))
        return Fusion(members, {n: columns[n] for n in members})
    if cfg.ensemble > 1:
        return Ensemble([_build_one(cfg, in_dim, num_classes) for _ in range(cfg.ensemble)])
    return _build_one(cfg, in_dim, num_classes)


def _build_one(cfg: ModelConfig, in_dim: int, num_classes: int) -> nn.Module:
    return TEMPORAL_MODELS.get(cfg.temporal)(in_dim, num_classes, cfg)
