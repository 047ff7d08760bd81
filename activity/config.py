"""Configuration: plain YAML mapped onto typed dataclasses.

A config has three sections: ``features`` (what the backbone sees, and so what
the feature cache is keyed by), ``model`` (the temporal model) and ``train``.
Any key can be overridden from the command line as ``section.key=value`` (or
just ``key=value`` where the name is unambiguous). Unknown keys, wrong types and
out-of-range values raise :class:`~activity.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from activity.errors import ConfigError, first_line
from activity.io import write_text
from activity.registry import (
    BACKBONES,
    DECODERS,
    ENHANCEMENTS,
    STREAMS,
    TEMPORAL_MODELS,
    Registry,
)


def _opt(default: Any, help: str, *, min: float | None = None, max: float | None = None,
         registry: Registry | None = None) -> Any:
    if isinstance(default, list):  # a fresh list for each config
        return field(default_factory=lambda: list(default), metadata={"help": help, "min": min, "max": max, "registry": registry})
    return field(default=default, metadata={"help": help, "min": min, "max": max, "registry": registry})


@dataclass
class FeatureConfig:
    """What the backbone sees. All fields but ``decoder`` are part of the feature cache key
    (both decoders return the same frames)."""

    backbone: str = _opt("efficientnet_lite0", "frame encoder (see `activity backbones`)", registry=BACKBONES)
    num_frames: int = _opt(16, "frames per clip, one from each of as many equal segments", min=1, max=512)
    views: int = _opt(1, "cached frames per segment; >1 gives training temporal jitter without decoding again (odd keeps test frames centred)", min=1, max=16)
    image_size: Optional[int] = _opt(None, "crop size fed to the backbone; null = the backbone's own", min=32, max=1024)
    frame_fit: Literal["crop", "pad", "stretch"] = _opt("crop", "fitting frames to the square input: crop = resize the short side, centre-crop (loses the ends of the long side); pad = whole frame on a square; stretch = whole frame resized to a square")
    enhance: str = _opt("dark", "brightness per frame before the backbone: dark = auto-gamma to a mid-grey mean for under-exposed frames only (mean below 0.2), others untouched; gamma = the same for every frame; clahe = adaptive histogram equalisation of lightness; none", registry=ENHANCEMENTS)
    decoder: str = _opt("auto", "video decoder; auto = OpenCV reading forward for clips up to 1,000 frames, decord seeking in longer ones where the sampled frames lie further apart than the keyframes, OpenCV where decord is missing or fails", registry=DECODERS)
    precision: Literal["float32", "int8", "bfloat16", "float16"] = _opt("float32", "backbone arithmetic; int8 = a quantised copy run by ONNX Runtime on the CPU (about twice float32's rate where the CPU has VNNI; quantised once, cached beside the ONNX export; features agree with float32's to a cosine of about 0.99); bfloat16/float16 run it under autocast (for GPUs)")
    streams: list[str] = _opt(["appearance", "motion"], "the streams a clip's features are made of, appearance first (activity.features.streams): appearance = the backbone's; motion = optical-flow direction histograms; pose = BlazePose body landmarks (make pose; for one person, whole body, new scenes). Each is read by its own models in the fusion. The old features.motion: true/false still means [appearance, motion] / [appearance]", registry=STREAMS)


@dataclass
class ModelConfig:
    """The temporal model over the sequence of frame features."""

    temporal: str = _opt("lstm", "lstm: bidirectional LSTM; mean: average of frame features, then linear; pooled_lr / middle_lr: logistic regression on pooled statistics / the middle frame", registry=TEMPORAL_MODELS)
    projection: int = _opt(64, "LSTM: project frame features to this size first (0: feed them as they are)", min=0, max=8192)
    hidden_size: int = _opt(64, "LSTM hidden size per direction", min=1, max=8192)
    num_layers: int = _opt(1, "stacked LSTM layers", min=1, max=8)
    dropout: float = _opt(0.5, "dropout before the classifier (and between LSTM layers)", min=0.0, max=0.95)
    input_dropout: float = _opt(0.2, "dropout on the input features", min=0.0, max=0.95)
    pooling: Literal["attention", "mean"] = _opt("attention", "pooling of LSTM outputs over valid time steps")
    frame_differences: bool = _opt(True, "LSTM input also gets each step's feature minus the previous one (cancels what does not move)")
    pooled_members: bool = _opt(True, "lstm: each stream's pooled-statistics logistic regression (pooled_lr on that stream) joins the fusion beside the stream's BiLSTM, all weighed on out-of-fold predictions (train.fusion_folds), so the mix can lean on whichever carries over")
    members: list[str] = _opt([], "lstm: keep only these fusion members (empty: every one): a stream's name for its BiLSTM, <stream>_lr for its pooled-statistics logistic regression; [motion] is the motion BiLSTM alone, what cv reports as lstm:motion (model.temporal=lstm:motion says the same). Every stream in features.streams is still extracted")
    ensemble: int = _opt(5, "models trained from successive seeds (train.seed, +1, ...) whose probabilities are averaged; less run-to-run variance for N times the training", min=1, max=64)


@dataclass
class TrainConfig:
    """Optimisation of the temporal model on cached features."""

    epochs: int = _opt(60, "maximum number of epochs", min=1, max=100000)
    batch_size: int = _opt(32, "clips per step", min=1, max=65536)
    lr: float = _opt(1e-3, "peak learning rate (AdamW, cosine schedule)", min=0.0, max=10.0)
    weight_decay: float = _opt(1e-2, "AdamW weight decay", min=0.0, max=10.0)
    label_smoothing: float = _opt(0.1, "label smoothing of the cross-entropy", min=0.0, max=0.99)
    patience: int = _opt(15, "stop after this many epochs without a better validation accuracy (0: never)", min=0)
    val_fraction: float = _opt(0.2, "validation share when no --val is given (split by group when groups are known)", min=0.0, max=0.5)
    fusion_folds: int = _opt(5, "folds of the training clips (by group when known) whose out-of-fold predictions choose a "
                                "fusion's weights (0: choose on the validation clips)", min=0, max=100)
    seed: int = _opt(0, "random seed", min=0)


@dataclass
class Config:
    """The whole configuration of a run."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> "Config":
        """Build a config from nested dicts, checking every key and value."""
        cfg = cls()
        if data is None:
            return cfg
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of sections ({', '.join(_sections())}), got {type(data).__name__}")
        for section, values in data.items():
            if section not in _sections():
                raise ConfigError(f"{source}: unknown section {section!r}; expected one of {', '.join(_sections())}")
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: section {section!r} must be a mapping")
            for key, value in values.items():
                cfg.set(f"{section}.{key}", value, source=source)
        return cfg

    def set(self, dotted: str, value: Any, *, source: str = "override") -> None:
        """Set ``section.key`` (or an unambiguous bare ``key``) to a checked value."""
        if dotted in ("features.motion", "motion"):  # before features.streams: a true/false for the motion stream
            dotted, value = "features.streams", _motion_streams(self.features.streams, value, source)
        section, key = _resolve(dotted, source)
        if (section, key) == ("model", "temporal") and isinstance(value, str) and ":" in value:
            value = self._temporal_member(value, source)
        obj = getattr(self, section)
        f = {f.name: f for f in dataclasses.fields(obj)}[key]
        setattr(obj, key, _check(f"{section}.{key}", value, f, source))

    def _temporal_member(self, value: str, source: str) -> str:
        """``lstm:<member>`` (as ``cv`` names a fusion's member) sets ``model.members`` to that member; returns ``lstm``."""
        name, member = (v.strip() for v in value.split(":", 1))
        if name != "lstm" or not member:
            raise ConfigError(f"{source}: model.temporal={value!r}: only a fusion's members can be named so, "
                              "as lstm:<member> (lstm:motion, lstm:appearance_lr)")
        self.model.members = [member]
        return name

    def check(self) -> "Config":
        """Check every value as :meth:`set` does (for configs built in Python, which skip those checks).

        Raises:
            ConfigError: naming the first key with a wrong type, an out-of-range value or an
                unknown name (backbone, decoder, enhancement, temporal model).
        """
        for section in _sections():
            obj = getattr(self, section)
            for f in dataclasses.fields(obj):
                _check(f"{section}.{f.name}", getattr(obj, f.name), f, "config")
        check_members(self.model.members, self.features.streams)
        return self

    def apply_overrides(self, overrides: list[str]) -> None:
        """Apply ``key=value`` strings; values are parsed as YAML scalars."""
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            key, raw = item.split("=", 1)
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError:
                value = raw
            self.set(key.strip(), value)


def _motion_streams(streams: list[str], motion: Any, source: str) -> list[str]:
    """``streams`` with the motion stream put in (``motion`` true, after appearance) or taken out (false)."""
    if not isinstance(motion, bool):
        raise ConfigError(f"{source}: features.motion must be true or false, got {motion!r}")
    rest = [s for s in streams if s != "motion"]
    return [*rest[:1], "motion", *rest[1:]] if motion else rest


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), then apply ``key=value`` overrides."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({first_line(e)})") from None
        cfg = Config.from_dict(data, source=str(p))
    cfg.apply_overrides(overrides or [])
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML that :func:`load_config` reads back; the file appears whole or not at all."""
    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def _resolve(dotted: str, source: str) -> tuple[str, str]:
    sections = _sections()
    if "." in dotted:
        section, key = dotted.split(".", 1)
        if section not in sections:
            raise ConfigError(f"{source}: unknown section {section!r} in {dotted!r}; expected one of {', '.join(sections)}")
        names = [f.name for f in dataclasses.fields(sections[section])]
        if key not in names:
            raise ConfigError(f"{source}: unknown key {dotted!r}; {section} has {', '.join(names)}")
        return section, key
    hits = [s for s, cls in sections.items() if dotted in {f.name for f in dataclasses.fields(cls)}]
    if not hits:
        raise ConfigError(f"{source}: unknown key {dotted!r}")
    if len(hits) > 1:
        raise ConfigError(f"{source}: key {dotted!r} is ambiguous; write one of {', '.join(h + '.' + dotted for h in hits)}")
    return hits[0], dotted


def _check(name: str, value: Any, f: dataclasses.Field, source: str) -> Any:
    hints = typing.get_type_hints(_owner(f))
    tp = hints[f.name]
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
        origin = typing.get_origin(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: {name} must not be empty")
    if origin is list:
        return _check_list(name, value, f, source)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{source}: {name}={value!r} is not allowed; choose from {', '.join(map(str, choices))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {name} must be an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {name} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {name} must be a finite number, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {name} must be a string, got {value!r}")
        registry = f.metadata.get("registry")
        if registry is not None and value not in registry:
            raise ConfigError(f"{source}: {name}={value!r} is not allowed: unknown {registry.kind}; "
                              f"choose from {registry.choices()}")
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"{source}: {name}={value!r} is out of range {bounds}")
    return value


def _check_list(name: str, value: Any, f: dataclasses.Field, source: str) -> list[str]:
    """A list of names (a YAML list, or one comma-separated string as an override can give it), each
    checked against the field's registry; a list-valued field also checks itself (its ``check``)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: {name} must be a list of names, got {value!r}")
    registry = f.metadata.get("registry")
    for v in value:
        if registry is not None and v not in registry:
            raise ConfigError(f"{source}: {name}: {v!r} is not allowed: unknown {registry.kind}; choose from {registry.choices()}")
    if registry is STREAMS:
        try:
            check_streams(value)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    return list(value)


def check_streams(names: Any) -> list[str]:
    """``names`` as given if they are registered streams (:data:`~activity.registry.STREAMS`), each once,
    ``appearance`` first (the backbone's features, which every model reads).

    Raises:
        ConfigError: naming what is wrong.
    """
    names = list(names)
    unknown = [n for n in names if n not in STREAMS]
    if unknown:
        raise ConfigError(f"features.streams: unknown stream {unknown[0]!r}; choose from {STREAMS.choices()}")
    if len(set(names)) != len(names):
        raise ConfigError(f"features.streams: {', '.join(names)} names a stream twice")
    if not names or names[0] != "appearance":
        raise ConfigError(f"features.streams: [{', '.join(names)}] must start with appearance "
                          "(the backbone's features, which every model reads)")
    return names


def lr_member(stream: str) -> str:
    """The fusion member name of a stream's pooled-statistics logistic regression."""
    return f"{stream}_lr"


def member_stream(member: str) -> str:
    """The stream a fusion member reads: a BiLSTM's own name, a regression's without ``_lr``."""
    return member[: -len("_lr")] if member.endswith("_lr") else member


def check_members(members: Any, streams: Any) -> list[str]:
    """``members`` (``model.members``) as given if each is a member of a fusion over ``streams``: a stream's
    name (its BiLSTM) or ``<stream>_lr`` (its pooled-statistics logistic regression).

    Raises:
        ConfigError: naming the first that is not, and the members there are.
    """
    every = [*streams, *(lr_member(s) for s in streams)]
    unknown = [m for m in members if m not in every]
    if unknown:
        raise ConfigError(f"model.members: {unknown[0]!r} is no member of a fusion over the streams "
                          f"{', '.join(streams)}; its members are {', '.join(every)}")
    return list(members)


def _owner(f: dataclasses.Field) -> type:
    for cls in _sections().values():
        if any(g is f for g in dataclasses.fields(cls)):
            return cls
    raise KeyError(f.name)  # pragma: no cover
