"""Which frames did the model look at? Per-frame importance for one video.

>>> from activity.inference.recognizer import load_model
>>> from activity.inference.explain import explain, save_explanation
>>> model = load_model("run/model.pt")
>>> expl = explain(model, "clip.mp4", method="occlusion")
>>> expl.label, expl.probability, expl.importance.round(3)
('dribbling', 0.81, array([0.002, 0.031, 0.412, ...]))
>>> save_explanation(expl, "strip.png")

Two methods:

* ``attention``: the weights the model's attention pooling gives each time
  step for this clip (they sum to 1). They say where the pooled
  representation came from, not how the decision would change without a
  frame, and only exist for an LSTM with ``pooling: attention``. For a model
  that pools uniformly (``temporal: mean``, or ``pooling: mean``) every step
  would get ``1/T``, which explains nothing: such a request **falls back to
  occlusion**, and :attr:`Explanation.note` says so (``method`` then reads
  ``"occlusion"``). The weights come before the head, so they are **the same
  for every class**: a ``target`` changes only the probability shown
  (:attr:`Explanation.class_independent` is true, and with a ``target``
  :attr:`Explanation.caveat` says so; the drawing and the ``activity explain`` command repeat it).
* ``occlusion``: for each step ``t``, the feature at ``t`` (all of it: the
  appearance and, for a two-stream model, the motion numbers) is replaced by the
  clip's mean feature (over its ``T`` steps) and the drop in the explained
  class's probability is measured: ``p(clip) - p(clip with step t occluded)``.
  Positive means the frame supported the class, negative that it spoke
  against it. All ``T`` occluded clips and the clip itself go through the
  model in one batch.

The methods are :data:`~activity.registry.EXPLAIN_METHODS`, registered here; torch is imported when
one runs, so that their names can be listed (the command line's choices) without it.

The frames are exactly those :meth:`~activity.inference.recognizer.ActionRecognizer.predict`
looks at: ``num_frames * views`` segment centres are sampled as for the
feature cache and the centre view of each of ``num_frames`` segments is kept
(as :func:`~activity.temporal.train.select_views` does at test time). The video is
decoded once; features are computed from those frames with the recognizer's
backbone and preprocessing (and, for a model trained with the motion stream, from
each frame's flow pair, decoded in the same pass as extraction does) and rounded to float16 as the cache stores them, so
the probabilities agree with ``predict``. The feature cache is neither read
nor written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from activity.data.sampling import segment_indices
from activity.data.decoders import open_video, read_sampled
from activity.errors import ActivityError
from activity.features.motion import read_with_pairs
from activity.inference.visualize import draw_explanation, write_png
from activity.registry import EXPLAIN_METHODS

if TYPE_CHECKING:
    import torch

ATTENTION_CAVEAT = ("attention weights are the same for every class; --target only changes the probability shown "
                    "(use --method occlusion for class-specific importances)")
"""What :attr:`Explanation.caveat` says of attention importances."""


@dataclass
class Explanation:
    """Per-frame importance of one video for one class.

    Attributes:
        path: the video.
        frames: uint8 RGB ``(T, H, W, 3)``: the ``T = num_frames`` frames the model sees.
        indices: their frame indices in the video, int64 ``(T,)``.
        times: their times in seconds, ``indices / fps`` (NaN when the frame rate is unknown).
        fps: frame rate reported by the container (0 when unknown).
        classes: the model's class names.
        probabilities: class probabilities of the whole clip ``(C,)``.
        label: the explained class: the prediction, or the ``target`` asked for.
        probability: the clip's probability of ``label``.
        importance: per-frame importance ``(T,)`` (see the module docstring).
        method: the method actually used (``"attention"`` or ``"occlusion"``).
        features: the frame features fed to the temporal model, float32 ``(T, D + M)`` (appearance,
            then ``M`` motion numbers for a model trained with the motion stream, else none).
        target_given: whether ``label`` was asked for rather than predicted.
        note: why the method differs from the one asked for, else None.
    """

    path: Path
    frames: np.ndarray
    indices: np.ndarray
    times: np.ndarray
    fps: float
    classes: list[str]
    probabilities: np.ndarray
    label: str
    probability: float
    importance: np.ndarray
    method: str
    features: np.ndarray
    target_given: bool = False
    note: str | None = None

    @property
    def predicted(self) -> str:
        """The top-1 class of the clip."""
        return self.classes[int(np.argmax(self.probabilities))]

    @property
    def predicted_probability(self) -> float:
        return float(np.max(self.probabilities))

    @property
    def class_independent(self) -> bool:
        """Whether the importances would be the same for any other class (attention weights are)."""
        return self.method == "attention"

    @property
    def caveat(self) -> str | None:
        """What the importances cannot tell about the class asked for: :data:`ATTENTION_CAVEAT` for attention
        with a ``target`` (without one, the weights explain the prediction as well as they can), else None."""
        return ATTENTION_CAVEAT if self.class_independent and self.target_given else None

    @property
    def top_frame(self) -> int:
        """Position (``0..T-1``) of the most important frame."""
        imp = np.asarray(self.importance, dtype=np.float64)
        return int(np.argmax(np.where(np.isfinite(imp), imp, -np.inf)))

    def as_dict(self) -> dict:
        """A JSON-ready summary (no pixels, no features)."""
        return {
            "path": str(self.path),
            "method": self.method,
            "note": self.note,
            "class_independent": self.class_independent,
            "label": self.label,
            "probability": round(float(self.probability), 6),
            "predicted": self.predicted,
            "predicted_probability": round(self.predicted_probability, 6),
            "frames": [
                {"index": int(i), "time": None if np.isnan(t) else round(float(t), 4), "importance": round(float(v), 6)}
                for i, t, v in zip(self.indices, self.times, self.importance)
            ],
        }


def uses_attention(model: torch.nn.Module) -> bool:
    """Whether the temporal model pools with learned attention (else its weights are uniform)."""
    return getattr(model, "attention", None) is not None


def _resolve_target(target: str | int | None, classes: list[str], probs: np.ndarray | None = None) -> int:
    if target is None:
        return int(np.argmax(probs))
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(classes):
            raise ActivityError(f"target class index {target} is out of range [0, {len(classes)})")
        return int(target)
    if isinstance(target, str) and target in classes:
        return classes.index(target)
    raise ActivityError(f"unknown target class {target!r}; the model's classes are {', '.join(classes)}")


def _sampled_frames(recognizer, path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, float]:
    """The ``num_frames`` frames ``predict`` looks at, their flow pairs, their indices and the frame rate; one decode.

    Returns:
        ``(frames, pairs, indices, fps)``: uint8 RGB ``(T, H, W, 3)``; with a motion stream the
        ``(first, second)`` frames of each one's flow stacked as ``(2, T, H, W, 3)`` (else None);
        int64 ``(T,)``; frames per second (0 when unknown).
    """
    spec = recognizer.spec
    with open_video(path, recognizer.options.decoder) as reader:
        if spec.partner_gap(reader.fps) is None:
            dense, dense_idx = read_sampled(reader, spec.length)  # what the feature cache holds
            pairs = None
        else:  # as extraction reads them
            dense, first, second = read_with_pairs(reader, spec.length, spec)
            dense_idx, pairs = segment_indices(reader.frame_count, spec.length), np.stack([first, second])
        fps = float(reader.fps)
    keep = segment_indices(spec.length, spec.num_frames)  # centre views, as select_views(random=False)
    pairs = None if pairs is None else np.ascontiguousarray(pairs[:, keep])
    return np.ascontiguousarray(dense[keep]), pairs, dense_idx[keep].astype(np.int64), fps


def _frame_features(recognizer, frames: np.ndarray, pairs: np.ndarray | None = None) -> np.ndarray:
    """The model's input ``(T, D + M)`` of decoded frames (and their flow pairs ``(2, T, H, W, 3)`` with a
    motion stream), rounded through float16 like the cache."""
    feats = recognizer.encode_clip(frames) if pairs is None else recognizer.encode_clip(frames, pairs[0], pairs[1])
    return feats.numpy().astype(np.float16).astype(np.float32)


def occlusion_batch(features: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(T + 1, T, D + M)``: the clip itself, then the clip with step ``t``'s whole feature (appearance and
    motion) replaced by the clip's mean feature."""
    import torch

    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    t = x.shape[0]
    batch = x[None].repeat(t + 1, 1, 1)
    steps = torch.arange(t)
    batch[steps + 1, steps] = x.mean(0)
    return batch


@EXPLAIN_METHODS.register("attention")
def attention_importance(model: torch.nn.Module, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's attention pooling weights of one clip, the same for every class.

    Args:
        model: a temporal model in eval mode, ``(B, T, D + M) -> (logits (B, C), weights (B, T))``.
        features: the clip's features, float32 ``(T, D + M)``.

    Returns:
        ``(probabilities (C,) float32, importance (T, C) float64)``; each column is the weights.
    """
    import torch

    with torch.inference_mode():
        logits, weights = model(torch.from_numpy(features)[None])
    probs = logits.softmax(1)[0].numpy()
    w = weights[0].double().numpy()
    return probs, np.repeat(w[:, None], len(probs), axis=1)


@EXPLAIN_METHODS.register("occlusion")
def occlusion_importance(model: torch.nn.Module, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each class's probability drop when one step becomes the clip's mean feature (:func:`occlusion_batch`).

    Args and returns as for :func:`attention_importance`: column ``c`` of the importance is
    ``p(clip)[c] - p(clip with step t occluded)[c]`` for every step ``t``.
    """
    import torch

    with torch.inference_mode():
        logits, _ = model(occlusion_batch(features))
    p = logits.softmax(1).double().numpy()
    return p[0].astype(np.float32), p[0] - p[1:]


def _no_attention_note(recognizer) -> str | None:
    """Why attention weights would explain nothing for this model (it pools uniformly), else None."""
    model = recognizer.model
    if uses_attention(model):
        return None
    from activity.temporal.models import POOLED_MODELS

    temporal = recognizer.checkpoint.config.model.temporal
    lr = temporal in POOLED_MODELS or getattr(model, "names", ("",))[0].endswith("_lr")  # a regression, or a fusion led by one
    kind = ("a mean model" if temporal == "mean" else "a logistic regression on pooled statistics" if lr
            else "an LSTM with mean pooling")
    return f"{kind} weighs every frame equally, so there are no attention weights to show; using occlusion instead"


def explain(
    recognizer,
    video_path: str | Path,
    *,
    method: str = "attention",
    target: str | int | None = None,
) -> Explanation:
    """Per-frame importance of one video.

    Args:
        recognizer: an :class:`~activity.inference.recognizer.ActionRecognizer`.
        video_path: the video file.
        method: a name of :data:`~activity.registry.EXPLAIN_METHODS`: ``"attention"`` (the model's
            pooling weights; falls back to ``"occlusion"`` with a note for a model that pools uniformly)
            or ``"occlusion"`` (drop in the class probability when a step's feature is replaced by the
            clip's mean feature).
        target: class (name or index) to explain; default: the predicted one.

    Returns:
        An :class:`Explanation`.

    Raises:
        ActivityError: unknown method (:class:`~activity.errors.ConfigError`, naming the choices) or
            target class, or a video that cannot be read (:class:`~activity.errors.VideoError`, naming the file).
    """
    importance_of = EXPLAIN_METHODS.get(method)
    path = Path(video_path)
    model = recognizer.model
    classes = list(recognizer.classes)
    if target is not None:
        _resolve_target(target, classes)  # an unknown class fails before any decoding
    note = _no_attention_note(recognizer) if method == "attention" else None
    if note:
        method, importance_of = "occlusion", EXPLAIN_METHODS.get("occlusion")

    frames, pairs, indices, fps = _sampled_frames(recognizer, path)
    features = _frame_features(recognizer, frames, pairs)
    model.eval()
    probs, importance = importance_of(model, features)
    c = _resolve_target(target, classes, probs)
    times = indices / fps if fps > 0 else np.full(len(indices), np.nan)
    return Explanation(
        path=path, frames=frames, indices=indices, times=times.astype(np.float64), fps=fps,
        classes=classes, probabilities=np.asarray(probs, dtype=np.float32), label=classes[c],
        probability=float(probs[c]), importance=importance[:, c], method=method, features=features,
        target_given=target is not None, note=note,
    )


def save_explanation(expl: Explanation, out_path: str | Path, **draw_kwargs) -> Path:
    """Draw ``expl`` (keyword arguments as for :func:`~activity.inference.visualize.draw_explanation`) and write it
    as a PNG (:func:`~activity.inference.visualize.write_png`: whatever its suffix, atomically, folders created).

    Raises:
        ActivityError: the image cannot be written there.
    """
    return write_png(draw_explanation(expl, **draw_kwargs), out_path)
