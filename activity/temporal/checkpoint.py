"""Checkpoints: a temporal model plus everything needed to use it elsewhere.

A checkpoint is a plain dict of strings, numbers, lists and tensors, saved with
``torch.save`` and loaded with ``torch.load(weights_only=True)``, so loading a
file never runs code from it. It holds the temporal model's weights, the class
names, the full config (backbone, sampling, model, training), the resolved
preprocessing (resize, crop, mean, std),
the metrics of the run and the package version.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from activity import __version__
from activity.config import Config
from activity.errors import ActivityError, first_line
from activity.features.streams import stream_widths
from activity.io import atomic_torch_save
from activity.temporal.models import build_temporal_model

FORMAT = "activity-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the temporal model in eval mode.
        classes: class names, in logit order.
        config: the run's config.
        feature_dim: length of a frame feature vector.
        metrics: metrics recorded by training.
        version: the ``activity`` version that wrote it.
    """

    model: nn.Module
    classes: list[str]
    config: Config
    feature_dim: int
    metrics: dict[str, Any] = field(default_factory=dict)
    version: str = __version__


def feature_spec_dict(config: Config) -> dict[str, Any]:
    """Backbone, weights, frames, views and preprocessing that ``config`` resolves to."""
    from dataclasses import asdict

    from activity.features.spec import FeatureSpec

    out = asdict(FeatureSpec.from_config(config.features))
    out["streams"] = list(out["streams"])  # as a checkpoint reads it back
    return out


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write atomically (temporary file, then rename)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "activity_version": __version__,
        "classes": list(ckpt.classes),
        "config": ckpt.config.to_dict(),
        "feature_dim": int(ckpt.feature_dim),
        # The resolved sampling and preprocessing, for people and tools reading the file.
        "features": feature_spec_dict(ckpt.config),
        "metrics": ckpt.metrics,
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.model.state_dict().items()},
    }
    atomic_torch_save(payload, path)


#: Config keys whose default changed after checkpoints were first written, with the value a
#: checkpoint that does not name them was trained with. ``features.streams`` was ``features.motion``
#: (true or false, which the config still reads) before: a checkpoint naming either keeps it.
LEGACY_DEFAULTS = {"features": {"streams": ["appearance"]}, "model": {"pooled_members": False}}


def _with_legacy_defaults(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for section, values in LEGACY_DEFAULTS.items():
        if isinstance(out.get(section), dict):
            for key, value in values.items():
                if not (section == "features" and "motion" in out[section]):
                    out[section].setdefault(key, value)
    return out


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint (a file, or a run folder holding ``model.pt``) safely; any file that is not one
    gets a one-line :class:`ActivityError`."""
    path = Path(path)
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise ActivityError(f"{path}: a folder without model.pt; pass a checkpoint file or a finished run folder")
        path = path / "model.pt"
    if not path.is_file():
        raise ActivityError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise ActivityError(f"{path}: not an activity checkpoint (not a PyTorch file)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Unsupported global" in text or "GLOBAL" in text or "unsupported" in text.lower():
            culprit = next((l.strip() for l in text.splitlines() if "GLOBAL" in l or "Unsupported global" in l), "")
            raise ActivityError(
                f"{path}: refused to load: the file holds Python objects that could run code when unpickled"
                + (f" ({culprit[:120]})" if culprit else "")
            ) from None
        raise ActivityError(f"{path}: not an activity checkpoint (unreadable pickle)") from None
    except Exception as e:
        raise ActivityError(f"{path}: not an activity checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ActivityError(f"{path}: not an activity checkpoint")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ActivityError(
            f"{path}: checkpoint format version {version} is not supported by activity {__version__} "
            f"(which reads version {FORMAT_VERSION})"
        )
    try:
        config = Config.from_dict(_with_legacy_defaults(payload["config"]), source=str(path))
        classes = list(payload["classes"])
        feature_dim = int(payload["feature_dim"])
        model = build_temporal_model(config.model, feature_dim, len(classes), stream_widths(config.features.streams, feature_dim))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = first_line(e, 120)
        raise ActivityError(f"{path}: damaged activity checkpoint ({type(e).__name__}: {first})") from None
    model.eval()
    stored = payload.get("features")
    if isinstance(stored, dict):
        from activity.features.spec import FeatureSpec

        stored = {**FeatureSpec.NEUTRAL, **stored}  # written before those options existed: their neutral values
        motion = stored.pop("motion")  # the streams' settings, as written before features.streams
        stored.setdefault("streams", [] if motion == "none" else [motion])
        stored["streams"] = list(stored["streams"])
    if stored is not None and stored != feature_spec_dict(config):
        warnings.warn(
            f"{path}: this version of activity preprocesses frames differently from the one that wrote the "
            "checkpoint; predictions may be off", stacklevel=2,
        )
    return Checkpoint(model, classes, config, feature_dim, payload.get("metrics", {}), payload.get("activity_version", "?"))
