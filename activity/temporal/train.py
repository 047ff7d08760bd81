"""Training the temporal model on cached features.

Plain functions you can read top to bottom: :func:`fit` runs AdamW with a
warm-up and cosine schedule, label smoothing, early stopping on validation
accuracy and keeps the best weights; :func:`train_one_epoch` and
:func:`evaluate_features` are the two halves of an epoch.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from activity.config import Config, member_stream
from activity.data.sampling import jittered_segment_indices, segment_indices
from activity.distributed import DistInfo, ParallelTraining
from activity.errors import ActivityError, describe
from activity.features.streams import stream_widths
from activity.io import atomic_text
from activity.temporal.models import (
    POOLED_MODELS,
    Ensemble,
    Fusion,
    build_temporal_model,
    fusion_members,
    is_fusion,
    lr_member,
)

_log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """The trained model (best epoch's weights) and its history.

    For an ensemble, ``members`` holds each member's result, ``best_epoch``
    lists their best epochs, ``best_val_accuracy`` is the ensemble's and
    ``history`` has every member's rows (with a ``member`` column).
    """

    model: nn.Module
    best_epoch: int | list[int]
    best_val_accuracy: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    members: list["FitResult"] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)  # what training chose on validation, and why


def select_views(x: torch.Tensor, num_frames: int, *, random: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick ``num_frames`` steps from dense cached features, by the rule of :mod:`activity.data.sampling`.

    Args:
        x: features ``(B, L, D)`` with ``L = num_frames * views``.
        num_frames: steps to keep.
        random: a random position inside each of ``num_frames`` equal segments
            of the dense sequence, per clip (training); else the centres.
        generator: torch generator the random positions are seeded from (one draw
            per call), so a seeded or resumed run picks the same views; torch's
            global generator when ``None``.

    Returns:
        ``(B, num_frames, D)``.
    """
    b, length, _ = x.shape
    if length == num_frames:
        return x
    if not random:
        return x[:, torch.from_numpy(segment_indices(length, num_frames)).to(x.device)]
    seed = int(torch.randint(2**31, (1,), generator=generator))
    idx = torch.from_numpy(jittered_segment_indices(length, num_frames, b, np.random.default_rng(seed)))
    return torch.gather(x, 1, idx.to(x.device)[:, :, None].expand(-1, -1, x.shape[2]))


def feature_stats(x: torch.Tensor, chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and (unbiased) std over all clips and steps of ``(N, L, D)`` features.

    Chunk by chunk (Chan et al.'s pairwise merge of means and squared deviations),
    so float16 features are never copied to float32 all at once.
    """
    flat = x.reshape(-1, x.shape[-1])
    n = 0
    mean = torch.zeros(flat.shape[1], dtype=torch.float64)
    m2 = torch.zeros_like(mean)
    for c in flat.split(chunk):
        c = c.float()
        k = len(c)
        c_mean = c.mean(0)
        c_m2 = (c - c_mean).square_().sum(0).double()
        delta = c_mean.double() - mean
        mean += delta * (k / (n + k))
        m2 += c_m2 + delta.square() * (n * k / (n + k))
        n += k
    return mean.float(), (m2 / max(n - 1, 1)).sqrt().float()


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    num_frames: int,
    batch_size: int,
    generator: torch.Generator,
    order: torch.Tensor | None = None,
) -> tuple[float, float]:
    """One pass over ``x (N, L, D)`` / ``y (N,)`` in shuffled batches; returns (mean loss, accuracy).

    ``order`` gives the clip indices to visit (a rank's share under torchrun);
    by default all clips, shuffled with ``generator``.
    """
    model.train()
    if order is None:
        order = torch.randperm(len(x), generator=generator)
    total_loss, correct = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        xb = select_views(x[idx], num_frames, random=True, generator=generator).float()
        yb = y[idx]
        logits, _ = model(xb)
        loss = criterion(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(1) == yb).sum().item()
    return total_loss / len(order), correct / len(order)


@torch.inference_mode()
def predict_features(model: nn.Module, x: torch.Tensor, num_frames: int, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities ``(N, C)`` and pooling weights ``(N, T)`` for cached features ``(N, L, D)`` (centre views)."""
    model.eval()
    probs, weights = [], []
    for start in range(0, len(x), batch_size):
        xb = select_views(x[start : start + batch_size], num_frames, random=False).float()
        logits, w = model(xb)
        probs.append(logits.softmax(1))
        weights.append(w)
    return torch.cat(probs), torch.cat(weights)


def evaluate_features(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_frames: int) -> tuple[float, float]:
    """(mean loss, accuracy) on centre views."""
    probs, _ = predict_features(model, x, num_frames)
    loss = nn.functional.nll_loss(probs.clamp_min(1e-12).log(), y).item()
    return loss, (probs.argmax(1) == y).float().mean().item()


def fit(
    cfg: Config,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    num_classes: int,
    val_x: torch.Tensor | None = None,
    val_y: torch.Tensor | None = None,
    *,
    out_dir: Path | None = None,
    progress: bool = True,
    resume: bool = False,
    dist: DistInfo | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    groups: np.ndarray | None = None,
    val_groups: np.ndarray | None = None,
) -> FitResult:
    """Train a temporal model on cached features.

    Args:
        cfg: the run's config (``model`` and ``train`` sections are used).
        train_x: training features ``(N, L, D)``, ``L = num_frames * views``.
        train_y: class indices ``(N,)``.
        num_classes: number of classes.
        val_x: validation features ``(M, L, D)``, or None to train for all epochs.
        val_y: validation class indices ``(M,)``.
        out_dir: where ``metrics.csv`` (one row per epoch) and the training
            state (``train_state.pt``, written atomically after every epoch) go.
        progress: show a progress bar.
        resume: continue from ``out_dir``'s training state: model, optimizer,
            schedule, random state and history, so the run ends where an
            uninterrupted one would.
        dist: under torchrun, this process's place among the ranks: training
            then runs data-parallel (see :class:`~activity.distributed.ParallelTraining`;
            every rank passes the same data) and only rank 0 writes to ``out_dir``.
        on_epoch: called with each completed epoch's row, as ``metrics.csv`` gets it plus the
            ``stream`` and ``member`` it belongs to where the run has them, once the epoch's
            training state is saved (on every rank that calls ``fit``): for live logs such as
            :class:`~activity.evaluation.curves.TensorBoardLog`.
        groups: recording groups of the training clips ``(N,)`` or None, and ``val_groups`` those of
            the validation clips ``(M,)``: the folds that choose a fusion's weights
            (:func:`choose_fusion_weights`) never split a group.


    Returns:
        A :class:`FitResult` with the weights of the best validation epoch
        (ties go to the lower validation loss), or of the last epoch without
        validation data. With ``model.ensemble: N > 1``, N models are trained
        one after the other from seeds ``train.seed + i`` (each in
        ``out_dir/member<i>``, resumable on its own) and combined into an
        :class:`~activity.temporal.models.Ensemble`.
    """
    if cfg.model.temporal in POOLED_MODELS:
        return _fit_baseline(cfg, train_x, train_y, num_classes, val_x, val_y, groups, val_groups)
    streams = stream_widths(cfg.features.streams, train_x.shape[-1])
    if is_fusion(cfg.model, streams):
        return _fit_fusion(cfg, train_x, train_y, num_classes, val_x, val_y, streams, out_dir=out_dir, progress=progress,
                           resume=resume, dist=dist, on_epoch=on_epoch, groups=groups, val_groups=val_groups)
    return _fit_stream(cfg, train_x, train_y, num_classes, val_x, val_y, out_dir=out_dir, progress=progress,
                       resume=resume, dist=dist, on_epoch=on_epoch)


def _fit_baseline(cfg: Config, train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, val_x: torch.Tensor | None,
                  val_y: torch.Tensor | None, groups: np.ndarray | None, val_groups: np.ndarray | None) -> FitResult:
    """:func:`fit` of ``pooled_lr`` or ``middle_lr``: the logistic regression ``cv`` compares
    (:class:`~activity.temporal.baselines.LogisticBaseline`, ``C`` chosen by its inner cross-validation,
    by group when known), on the training and validation clips together (it needs no early stopping),
    as a :class:`~activity.temporal.models.PooledLogistic`. No epochs, so no history."""
    x, y, g = _all_labelled(train_x, train_y, groups, val_x, val_y, val_groups)
    model, c = fit_logistic(cfg, cfg.model.temporal, x, y, g, num_classes)
    return FitResult(model, 0, None, [], selection={"C": c, "fitted_on": f"{len(y)} labelled clips"})


def fit_logistic(cfg: Config, kind: str, x: torch.Tensor, y: torch.Tensor, groups: np.ndarray | None, num_classes: int,
                 c: float | None = None) -> tuple[nn.Module, float]:
    """A fitted :class:`~activity.temporal.baselines.LogisticBaseline` of ``kind`` on features ``(N, L, D)``
    (centre views) as a :class:`~activity.temporal.models.PooledLogistic`, and its ``C``: chosen by the
    baseline's inner cross-validation (by group when ``groups`` are known), or ``c`` where given."""
    from dataclasses import replace

    from activity.temporal.baselines import LogisticBaseline
    from activity.temporal.models import PooledLogistic

    baseline = LogisticBaseline(kind, seed=cfg.train.seed) if c is None else LogisticBaseline(kind, cs=(c,))
    baseline.fit(select_views(x, cfg.features.num_frames, random=False), y.numpy(), groups)
    model = PooledLogistic.from_baseline(baseline, x.shape[-1], num_classes, replace(cfg.model, temporal=kind))
    return model, float(baseline.c_)  # type: ignore[arg-type]


def _tagged(on_epoch: Callable[[dict[str, Any]], None] | None, **tags: Any) -> Callable[[dict[str, Any]], None] | None:
    """``on_epoch`` given each row with ``tags`` (its stream or member) in front."""
    if on_epoch is None:
        return None
    return lambda row: on_epoch({**tags, **row})


#: Steps of the members' weights a fusion tries: every mix whose weights are multiples of 1/FUSION_STEPS
#: and sum to one (two members: 0, 0.25, 0.5, 0.75, 1; four: 35 mixes).
FUSION_STEPS = 4


def _fit_fusion(cfg: Config, train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, val_x: torch.Tensor | None,
                val_y: torch.Tensor | None, streams: list[tuple[str, int]], **kw: Any) -> FitResult:
    """Each stream's model (trained and early-stopped on its own) and, with ``model.pooled_members``, each
    stream's pooled logistic regression (only the :func:`~activity.temporal.models.fusion_members` that
    ``model.members`` names, where it names any), mixed with the weights :func:`choose_fusion_weights` picks;
    see :class:`~activity.temporal.models.Fusion`."""
    groups, val_groups = kw.pop("groups"), kw.pop("val_groups")
    out_dir, main = kw.pop("out_dir"), kw["dist"] is None or kw["dist"].is_main
    columns, start = {}, 0
    for name, width in streams:
        columns[name], start = (start, start + width), start + width
    names = fusion_members(cfg.model, list(columns))
    parts = {}
    for name, (lo, hi) in columns.items():
        if name not in names:
            continue
        sub = None if out_dir is None else Path(out_dir) / name
        if sub is not None and main:
            sub.mkdir(parents=True, exist_ok=True)
        started = sub is not None and any(sub.rglob(STATE_FILE))
        parts[name] = _fit_stream(cfg, train_x[..., lo:hi], train_y, num_classes, None if val_x is None else val_x[..., lo:hi],
                                  val_y, out_dir=sub, **{**kw, "resume": kw["resume"] and started,
                                                         "on_epoch": _tagged(kw["on_epoch"], stream=name),
                                                         "label": f"train {name}"})
    # Folds only where there is a mix to weigh; a single member gets weight 1.
    labelled = fusion_folds(cfg, train_x, train_y, groups, val_x, val_y, val_groups) if len(names) > 1 else None
    members: dict[str, nn.Module] = {name: r.model for name, r in parts.items()}
    lr_cs: dict[str, float] = {}
    # On every labelled clip where folds judge the mix (or a regression stands alone), else on the training side only.
    if labelled:
        x, y, g = labelled[:3]
    elif len(names) == 1:  # a regression alone needs no early stopping: every labelled clip, as pooled_lr
        x, y, g = _all_labelled(train_x, train_y, groups, val_x, val_y, val_groups)
    else:
        x, y, g = train_x, train_y, groups
    for name, (lo, hi) in columns.items():
        if lr_member(name) in names:
            members[lr_member(name)], lr_cs[name] = fit_logistic(cfg, "pooled_lr", x[..., lo:hi], y, g, num_classes)
    member_columns = {**columns, **{lr_member(n): c for n, c in columns.items()}}
    model = Fusion({n: members[n] for n in names}, {n: member_columns[n] for n in names}).eval()
    selection = choose_fusion_weights(model, cfg, num_classes, val_x, val_y, labelled, lr_cs,
                                      dist=kw["dist"], progress=kw["progress"])
    if lr_cs:
        selection["pooled_C"] = lr_cs
    model.weights.copy_(torch.tensor([selection["fusion_weights"][n] for n in model.names]))
    history = [{"stream": name, **row} for name, r in parts.items() for row in r.history]
    if out_dir is not None and main:
        with atomic_text(Path(out_dir) / "metrics.csv") as f:
            writer = csv.DictWriter(f, ["stream", "member", *METRIC_COLUMNS], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)
    return FitResult(model, {name: r.best_epoch for name, r in parts.items()}, selection.get("validation_accuracy"),  # type: ignore[arg-type]
                     history, list(parts.values()), selection)


Labelled = tuple[torch.Tensor, torch.Tensor, "np.ndarray | None", list[tuple[np.ndarray, np.ndarray]]]


def fusion_folds(cfg: Config, train_x: torch.Tensor, train_y: torch.Tensor, groups: np.ndarray | None,
                  val_x: torch.Tensor | None, val_y: torch.Tensor | None, val_groups: np.ndarray | None) -> Labelled | None:
    """Every labelled clip ``(x, y, groups)`` and ``train.fusion_folds`` folds of them (by group when known,
    stratified otherwise), or None where no such folds can be made (too few clips or groups, or folds off)."""
    from activity.data.splits import kfold_splits

    if cfg.train.fusion_folds < 2:
        return None
    x, y, g = _all_labelled(train_x, train_y, groups, val_x, val_y, val_groups)  # a copy of every feature
    try:
        return x, y, g, kfold_splits(y.numpy(), g, cfg.train.fusion_folds, seed=cfg.train.seed)
    except ActivityError:
        return None


def choose_fusion_weights(model: Fusion, cfg: Config, num_classes: int, val_x: torch.Tensor | None,
                          val_y: torch.Tensor | None, labelled: Labelled | None, lr_cs: dict[str, float], *,
                          dist: DistInfo | None = None, progress: bool = False) -> dict[str, Any]:
    """The weight of each member of a fusion, and how it was chosen.

    Scored on the out-of-fold predictions of every labelled clip (``labelled``: training and validation
    together, folds by group when known; :func:`out_of_fold_log_probs`), in two steps:

    1. each stream's representative: its BiLSTM or its pooled logistic regression, whichever has the
       lower log-loss (a proper score of every clip's probabilities, steadier than accuracy on a few
       dozen clips; ties to the BiLSTM);
    2. the representatives' weights: every mix in multiples of ``1 / FUSION_STEPS`` summing to one (two
       streams: 5 mixes, three: 15), the most accurate winning (ties: the lower log-loss, then the most
       even mix). The other members get 0.

    Every member alone, or a mix of all of them at once, was measured to choose worse on held-out scenes
    (35 mixes of four members chase noise in a few dozen clips). A validation split of a few dozen clips,
    often from the scenes training saw, cannot tell which stream carries over to new scenes; every clip
    held out by its recording can. Without folds, on the validation clips (the logistic regressions were
    then fitted without them); without either, the BiLSTMs in equal weights.

    Args:
        lr_cs: the ``C`` of each stream's logistic regression member (by stream name), which the out-of-fold
            ones reuse.

    Returns:
        ``fusion_weights`` (member -> weight), ``chosen_on`` (in words), ``weighed`` (each stream's
        representative), ``candidates`` (mixes tried) and the scores behind them: ``out_of_fold_accuracy``
        and ``out_of_fold_log_loss`` of each member alone and ``out_of_fold_mix`` (the chosen mix's accuracy
        and log-loss), or ``validation_member_accuracy``, ``validation_log_loss`` and ``validation_accuracy``
        (of the chosen mix).
    """
    names = model.names
    if len(names) == 1:
        return {"fusion_weights": {names[0]: 1.0}, "chosen_on": "the only member (model.members)", "candidates": 1}
    streams = list(dict.fromkeys(member_stream(n) for n in names))  # the streams with a member, in order
    grid = _weight_grid(len(streams), FUSION_STEPS)
    out: dict[str, Any] = {"candidates": len(grid)}
    scored: tuple[list[np.ndarray], np.ndarray] | None = None
    # Scored on validation only without folds: with folds the logistic regressions were fitted on those clips too.
    has_val = labelled is None and has_validation(val_x, val_y)
    if has_val:
        val_lp = [_log_probs(model.member(n), model.part(n, val_x), cfg.features.num_frames) for n in names]  # type: ignore[arg-type]
        scored, out["chosen_on"] = (val_lp, val_y.numpy()), f"{len(val_x)} validation clips"  # type: ignore[union-attr]
    if labelled is not None:
        x, y, g, folds = labelled
        oof = out_of_fold_log_probs(cfg, x, y, num_classes, g, folds, model.columns, lr_cs, dist=dist, progress=progress)
        scored = ([oof[n] for n in names], y.numpy())
        out["out_of_fold_accuracy"] = {n: _mix_score([oof[n]], y.numpy(), (1.0,))[0] for n in names}
        by = "by group" if g is not None else "stratified"
        out["chosen_on"] = f"out-of-fold predictions of {len(y)} labelled clips, {len(folds)} folds {by}"
    if scored is None:
        each = [s if s in names else lr_member(s) for s in streams]  # the BiLSTM where there is one
        return {"fusion_weights": {n: 1 / len(streams) if n in each else 0.0 for n in names},
                "chosen_on": "no validation clips: equal weights", **out}
    lps, target = dict(zip(names, scored[0])), scored[1]
    alone = {n: _mix_score([lps[n]], target, (1.0,)) for n in names}
    reps = [lr_member(s) if lr_member(s) in alone and (s not in alone or alone[lr_member(s)][1] > alone[s][1]) else s
            for s in streams]
    scores = {w: _mix_score([lps[r] for r in reps], target, w) for w in grid}
    best = max(grid, key=lambda w: (*scores[w], -float(np.square(w).sum())))
    chosen = dict(zip(reps, map(float, best)))
    out["weighed"] = reps
    out["fusion_weights"] = {n: chosen.get(n, 0.0) for n in names}
    key = "out_of_fold" if labelled is not None else "validation"
    out[f"{key}_log_loss"] = {n: -s[1] for n, s in alone.items()}
    if labelled is not None:
        out["out_of_fold_mix"] = {"accuracy": scores[best][0], "log_loss": -scores[best][1]}
    if has_val:
        out["validation_member_accuracy"] = {n: s[0] for n, s in alone.items()}
        out["validation_accuracy"] = scores[best][0]
    return out


def _weight_grid(members: int, steps: int) -> list[tuple[float, ...]]:
    """Every ``members`` weights that are multiples of ``1 / steps`` summing to one, as tuples."""
    from itertools import combinations

    out = []
    for bars in combinations(range(steps + members - 1), members - 1):  # stars and bars
        edges = (-1, *bars, steps + members - 1)
        out.append(tuple((edges[i + 1] - edges[i] - 1) / steps for i in range(members)))
    return out


def _all_labelled(train_x: torch.Tensor, train_y: torch.Tensor, groups: np.ndarray | None, val_x: torch.Tensor | None,
                  val_y: torch.Tensor | None, val_groups: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
    """Training and validation clips together ``(x, y, groups or None)``; a validation side without groups is one group."""
    if val_x is None or val_y is None or len(val_x) == 0:
        return train_x, train_y, groups
    g = None
    if groups is not None:
        g = np.concatenate([groups.astype(str), np.full(len(val_x), "<validation>") if val_groups is None else val_groups.astype(str)])
    return torch.cat([train_x, val_x.to(train_x.dtype)]), torch.cat([train_y, val_y]), g


def out_of_fold_log_probs(cfg: Config, x: torch.Tensor, y: torch.Tensor, num_classes: int, groups: np.ndarray | None,
                          folds: list[tuple[np.ndarray, np.ndarray]], columns: dict[str, tuple[int, int]],
                          lr_cs: dict[str, float], *, dist: DistInfo | None = None,
                          progress: bool = False) -> dict[str, np.ndarray]:
    """Each fusion member's class log-probabilities ``(N, C)`` for every clip of ``x (N, L, D)``, from a model
    trained on the other folds: per BiLSTM member (``columns``, by member name) one BiLSTM (not an ensemble: the
    weights are chosen on these, and the streams are then trained on all the clips as usual), early-stopped on
    a validation split of its own training part, and, for each stream in ``lr_cs``, a pooled logistic regression
    with that ``C`` (chosen once, by the final member's inner cross-validation)."""
    from activity.data.splits import validation_split
    from activity.progress import progress_bar

    one = copy.deepcopy(cfg)
    one.model.ensemble = 1
    streams = list(dict.fromkeys(member_stream(n) for n in columns))
    out = {n: np.zeros((len(x), num_classes)) for n in columns}
    with progress_bar(total=len(columns) * len(folds), desc="fusion: out-of-fold", unit="model",
                      enabled=progress) as bar:
        for k, (tr, te) in enumerate(folds):
            try:
                inner = validation_split(y[tr].numpy(), None if groups is None else groups[tr], cfg.train.val_fraction,
                                         seed=cfg.train.seed + k) if cfg.train.val_fraction > 0 else None
            except ActivityError:
                inner = None
            fit_idx, val_idx = (tr[inner[0]], tr[inner[1]]) if inner is not None else (tr, tr[:0])
            for name in streams:
                bar.set_description(f"fusion: fold {k + 1}/{len(folds)}, {name}")
                lo, hi = columns[name if name in columns else lr_member(name)]
                xs = x[..., lo:hi]
                if name in columns:
                    fit_x = xs[fit_idx]
                    r = _fit_one(one, fit_x, y[fit_idx], num_classes, xs[val_idx] if len(val_idx) else None,
                                 y[val_idx] if len(val_idx) else None, feature_stats(fit_x), out_dir=None,
                                 progress=False, resume=False, dist=dist)
                    out[name][te] = _log_probs(r.model, xs[te], cfg.features.num_frames)
                    bar.update(1)
                if name in lr_cs:
                    lr, _ = fit_logistic(cfg, "pooled_lr", xs[tr], y[tr], None, num_classes, c=lr_cs[name])
                    out[lr_member(name)][te] = _log_probs(lr, xs[te], cfg.features.num_frames)
                    bar.update(1)
    return out


def _log_probs(model: nn.Module, x: torch.Tensor, num_frames: int) -> np.ndarray:
    """Class log-probabilities ``(N, C)`` of ``x (N, L, D)`` on centre views."""
    return predict_features(model, x, num_frames)[0].clamp_min(1e-12).log().numpy()


def _mix_score(log_probs: list[np.ndarray], y: np.ndarray, weights: tuple[float, ...]) -> tuple[float, float]:
    """``(accuracy, -log-loss)`` of the mix ``sum_i weights[i] * log_probs[i]`` of members' log-probabilities ``(N, C)``."""
    mix = torch.from_numpy(sum(w * lp for w, lp in zip(weights, log_probs))).log_softmax(1)  # type: ignore[arg-type]
    target = torch.from_numpy(y).long()
    return float((mix.argmax(1) == target).float().mean()), -float(nn.functional.nll_loss(mix, target))


def _fit_stream(cfg: Config, train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, val_x: torch.Tensor | None,
                val_y: torch.Tensor | None, *, out_dir: Path | None, progress: bool, resume: bool,
                dist: DistInfo | None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
                label: str = "train") -> FitResult:
    """:func:`fit` (same arguments) of one temporal model, or an ensemble of them, on one stream's features;
    ``label`` names the progress bars (each member's gets ``i/n`` after it)."""
    n = cfg.model.ensemble
    stats = feature_stats(train_x)  # once: every member standardises with the same training statistics
    if n == 1:
        return _fit_one(cfg, train_x, train_y, num_classes, val_x, val_y, stats, out_dir=out_dir, progress=progress,
                        resume=resume, dist=dist, on_epoch=on_epoch, label=label)
    if resume and (out_dir is None or not (Path(out_dir) / "member0" / STATE_FILE).exists()):
        raise ActivityError(f"nothing to resume: {Path(out_dir or '.') / 'member0' / STATE_FILE} not found")
    main = dist is None or dist.is_main
    members = []
    for i in range(n):
        member_cfg = copy.deepcopy(cfg)
        member_cfg.model.ensemble = 1
        member_cfg.train.seed = cfg.train.seed + i
        member_dir = None
        if out_dir is not None:
            member_dir = Path(out_dir) / f"member{i}"
            if main:
                member_dir.mkdir(parents=True, exist_ok=True)
        started = member_dir is not None and (member_dir / STATE_FILE).exists()
        members.append(_fit_one(member_cfg, train_x, train_y, num_classes, val_x, val_y, stats, out_dir=member_dir,
                                progress=progress, resume=resume and started, dist=dist,
                                on_epoch=_tagged(on_epoch, member=i), label=f"{label} {i + 1}/{n}"))
    model = Ensemble([m.model for m in members]).eval()
    history = [{"member": i, **row} for i, m in enumerate(members) for row in m.history]
    if out_dir is not None and main:
        with open(Path(out_dir) / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["member", *METRIC_COLUMNS])
            writer.writeheader()
            writer.writerows(history)
    has_val = has_validation(val_x, val_y)
    val_acc = evaluate_features(model, val_x, val_y, cfg.features.num_frames)[1] if has_val else None  # type: ignore[arg-type]
    return FitResult(model, [m.best_epoch for m in members], val_acc, history, members)  # type: ignore[misc]


def has_validation(val_x: torch.Tensor | None, val_y: torch.Tensor | None) -> bool:
    """There are validation clips ``(N, L, D)`` with labels ``(N,)``, N > 0: epochs and fusion weights can be chosen on them."""
    return val_x is not None and val_y is not None and len(val_x) > 0


METRIC_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]


def _fit_one(
    cfg: Config,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    num_classes: int,
    val_x: torch.Tensor | None,
    val_y: torch.Tensor | None,
    stats: tuple[torch.Tensor, torch.Tensor],
    *,
    out_dir: Path | None,
    progress: bool,
    resume: bool,
    dist: DistInfo | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    label: str = "train",
) -> FitResult:
    """:func:`fit` for one model; ``stats``: :func:`feature_stats` of ``train_x``; ``label`` names its progress bar."""
    tc = cfg.train
    torch.manual_seed(tc.seed)
    np.random.seed(tc.seed)
    run = _Run(cfg, train_x, train_y, val_x, val_y, num_classes, stats, dist)
    state = _TrainState(best=(-1.0, 0.0))  # best = (val accuracy, -val loss)
    state_file = Path(out_dir) / STATE_FILE if out_dir is not None else None
    if resume:
        if state_file is None or not state_file.exists():
            raise ActivityError(f"nothing to resume: {state_file} not found")
        state = _load_state(state_file, run.model, run.optimizer, run.scheduler, run.gen, run.fingerprint())
        if run.parallel.is_main:
            _log.info(f"{label}: finished before the interruption (epoch {state.epoch} of {tc.epochs})"
                      if state.stopped or state.epoch >= tc.epochs else
                      f"{label}: resuming at epoch {state.epoch + 1} of {tc.epochs}")
    log = _MetricsLog(Path(out_dir) / "metrics.csv" if out_dir is not None and run.parallel.is_main else None, state.history)
    bar = _EpochBar(label, state.epoch, tc.epochs, progress)
    try:
        for epoch in range(state.epoch + 1, tc.epochs + 1):
            if state.stopped:
                break
            row = run.epoch(epoch, state)
            bar.update(row, state, run.has_val)
            log.write(row)
            if log.path is not None:
                _save_state(state_file, state, run.model, run.optimizer, run.scheduler, run.gen, run.fingerprint())
            if on_epoch is not None:
                on_epoch(dict(row))
    finally:
        bar.close(state)
        log.close()
    return run.result(state)


class _EpochBar:
    """One model's progress bar, named (``train appearance 2/5``), ending with why it ended."""

    def __init__(self, label: str, done: int, epochs: int, progress: bool, file: Any = None) -> None:
        from activity.progress import progress_bar

        self.bar = progress_bar(desc=label, unit="epoch", initial=done, total=epochs, file=file, enabled=progress)

    def update(self, row: dict[str, Any], state: "_TrainState", has_val: bool) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{row['train_loss']:.3f}", **(
            {"val_acc": f"{row['val_accuracy']:.3f}", "best": f"{state.best[0]:.3f}@{state.best_epoch}"} if has_val
            else {"acc": f"{row['train_accuracy']:.3f}"}))

    def close(self, state: "_TrainState") -> None:
        if state.stopped:  # a full bar that says so, not one that halts at 40% like a crash
            self.bar.total = state.epoch
            self.bar.set_postfix_str(f"stopped early at epoch {state.epoch} (best {state.best_epoch})")
        self.bar.close()


class _Run:
    """One model's training: the model, optimizer, schedule and random state, and one epoch of it."""

    def __init__(self, cfg: Config, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor | None,
                 val_y: torch.Tensor | None, num_classes: int, stats: tuple[torch.Tensor, torch.Tensor],
                 dist: DistInfo | None) -> None:
        tc = cfg.train
        self.cfg, self.train_x, self.train_y, self.val_x, self.val_y = cfg, train_x, train_y, val_x, val_y
        self.has_val = has_validation(val_x, val_y)
        self.gen = torch.Generator().manual_seed(tc.seed)
        self.model = build_temporal_model(cfg.model, train_x.shape[-1], num_classes)
        self.model.set_feature_stats(*stats)
        self.parallel = ParallelTraining(dist, tc.seed)
        self.net = self.parallel.wrap(self.model)
        self.batch_size = self.parallel.batch_size(tc.batch_size)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=tc.label_smoothing)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        steps_per_epoch = math.ceil(self.parallel.num_samples(len(train_x)) / self.batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _warmup_cosine(steps_per_epoch, tc.epochs))

    def fingerprint(self) -> str:
        if not hasattr(self, "_fingerprint"):  # hashes every feature: once per run, not once per epoch
            self._fingerprint = _fingerprint(self.cfg, self.train_x, self.train_y, self.val_x, self.val_y)
        return self._fingerprint

    def epoch(self, epoch: int, state: "_TrainState") -> dict[str, Any]:
        """Train one epoch, validate, and update ``state`` (best weights, early stopping); returns its metrics row."""
        t0 = time.perf_counter()
        num_frames, tc = self.cfg.features.num_frames, self.cfg.train
        lr = self.optimizer.param_groups[0]["lr"]
        order = self.parallel.epoch_order(len(self.train_x), epoch)
        train_loss, train_acc = self.parallel.mean(*train_one_epoch(
            self.net, self.criterion, self.optimizer, self.scheduler, self.train_x, self.train_y, num_frames,
            self.batch_size, self.gen, order))
        row: dict[str, Any] = {"epoch": epoch, "train_loss": round(train_loss, 5), "train_accuracy": round(train_acc, 5),
                               "val_loss": "", "val_accuracy": "", "lr": lr}
        if self.has_val:
            val_loss, val_acc = self.parallel.evaluate(
                lambda x, y: evaluate_features(self.model, x, y, num_frames), self.val_x, self.val_y)  # type: ignore[arg-type]
            row.update(val_loss=round(val_loss, 5), val_accuracy=round(val_acc, 5))
            if (val_acc, -val_loss) > state.best:
                state.best, state.best_epoch, state.since_best = (val_acc, -val_loss), epoch, 0
                state.best_state = copy.deepcopy(self.model.state_dict())
            else:
                state.since_best += 1
        row["seconds"] = round(time.perf_counter() - t0, 3)
        state.history.append(row)
        state.epoch = epoch
        state.stopped = bool(self.has_val and tc.patience and state.since_best >= tc.patience)
        return row

    def result(self, state: "_TrainState") -> FitResult:
        """The best validation epoch's weights (the last epoch's without validation data), in eval mode."""
        best_epoch = state.best_epoch
        if state.best_state is not None:
            self.model.load_state_dict(state.best_state)
        else:
            best_epoch = len(state.history)
        self.model.eval()
        return FitResult(self.model, best_epoch, state.best[0] if self.has_val else None, state.history)


def _warmup_cosine(steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up over the first epoch (at most a tenth of the run), then cosine to 0."""
    total = epochs * steps_per_epoch
    warmup = min(steps_per_epoch, total // 10)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


class _MetricsLog:
    """``metrics.csv``, one row per epoch, flushed as it goes (None: no file); a resumed run rewrites the rows it keeps."""

    def __init__(self, path: Path | None, history: list[dict[str, Any]]) -> None:
        self.path = path
        self._file = open(path, "w", newline="") if path is not None else None
        self._writer = csv.DictWriter(self._file, METRIC_COLUMNS) if self._file is not None else None
        if self._writer is not None:
            self._writer.writeheader()
            self._writer.writerows(history)
            self._file.flush()  # type: ignore[union-attr]

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.writerow(row)
            self._file.flush()  # type: ignore[union-attr]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


STATE_FILE = "train_state.pt"
STATE_FORMAT = "activity-train-state"


@dataclass
class _TrainState:
    """Where training stands after a completed epoch (everything but the live objects)."""

    epoch: int = 0
    best: tuple[float, float] = (-1.0, 0.0)
    best_epoch: int = 0
    since_best: int = 0
    stopped: bool = False
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _fingerprint(cfg: Config, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor | None,
                 val_y: torch.Tensor | None) -> str:
    """What must not change between an interrupted run and its resumption: the config, and the clips trained
    and validated on (their features and labels, so that other clips of the same number are refused too)."""
    import hashlib
    import json

    blob = json.dumps({"config": cfg.to_dict(), "train_shape": list(train_x.shape),
                       "val_shape": list(val_x.shape) if val_x is not None else None}, sort_keys=True)
    h = hashlib.sha1(blob.encode())
    for t in (train_x, train_y, val_x, val_y):
        if t is not None:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _save_state(path: Path, state: _TrainState, model: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator, fingerprint: str) -> None:
    from activity.io import atomic_torch_save

    atomic_torch_save({
        "format": STATE_FORMAT,
        "fingerprint": fingerprint,
        "epoch": state.epoch,
        "best": list(state.best),
        "best_epoch": state.best_epoch,
        "since_best": state.since_best,
        "stopped": state.stopped,
        "best_state": state.best_state,
        "history": state.history,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }, path)


def _load_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator, fingerprint: str) -> _TrainState:
    try:
        s = torch.load(path, map_location="cpu", weights_only=True)
        if s.get("format") != STATE_FORMAT:
            raise ValueError("not a training state")
    except Exception as e:
        raise ActivityError(f"{path}: cannot resume from it ({describe(e, 100)})") from None
    if s["fingerprint"] != fingerprint:
        raise ActivityError(f"{path}: the config or the data differ from the interrupted run; cannot resume")
    model.load_state_dict(s["model"])
    optimizer.load_state_dict(s["optimizer"])
    scheduler.load_state_dict(s["scheduler"])
    gen.set_state(s["generator"])
    torch.set_rng_state(s["torch_rng"])
    return _TrainState(s["epoch"], tuple(s["best"]), s["best_epoch"], s["since_best"], s["stopped"], s["best_state"], s["history"])
