"""One registry per kind of thing: backbones, decoders, enhancements, streams, temporal models, baselines,
explanation methods, export formats, result formats.

The config's allowed values, the CLI's choices and cross-validation's model
names are all read from these, so a name is written once, where the thing is
implemented::

    from activity.registry import TEMPORAL_MODELS

    @TEMPORAL_MODELS.register("lstm")
    class LSTMClassifier(nn.Module): ...

    TEMPORAL_MODELS.names()          # ['lstm', 'mean']
    TEMPORAL_MODELS.get("lstm")      # the class
    TEMPORAL_MODELS.get("gru")       # ConfigError: unknown temporal model 'gru'; choose from lstm, mean

A registry can also resolve a whole family of names through a factory: backbones
``timm:NAME`` stand for any pretrained timm model without registering each one
(:meth:`Registry.add_family`); :meth:`Registry.names` lists the registered names only.

The registries are declared here, below every other module, so that
:mod:`activity.config` can check a value against them. Their entries are
registered by the module that implements them (its ``provider``), which is
imported the first time a registry is read.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

from activity.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to implementations of one kind of thing.

    Args:
        kind: what is registered, for messages ("backbone").
        key: the config key whose values are these names ("features.backbone"), if any.
        provider: the module that registers the entries (imported on first read).
    """

    def __init__(self, kind: str, key: str | None, provider: str) -> None:
        self.kind = kind
        self.key = key
        self.provider = provider
        self._entries: dict[str, T] = {}
        self._families: dict[str, Callable[[str], T]] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class or function under ``name``."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``; a name is registered once."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj

    def add_family(self, prefix: str, factory: Callable[[str], T]) -> None:
        """Resolve every name ``prefix + NAME`` (NAME not empty) to ``factory(NAME)``.

        The factory is called by :meth:`get` and must be cheap and import nothing heavy: checking
        a config value only tests the prefix (:meth:`__contains__`); whether NAME exists is up to
        what the factory returns.
        """
        if prefix in self._families:
            raise ValueError(f"{self.kind} family {prefix!r} is registered twice")
        self._families[prefix] = factory

    def _family(self, name: str) -> str | None:
        """The family prefix ``name`` belongs to, if any."""
        self._load()
        return next((p for p in self._families if name.startswith(p) and len(name) > len(p)), None)

    def choices(self) -> str:
        """The registered names and the families, for messages: ``"a, b, timm:NAME"``."""
        return ", ".join(self.names() + [p + "NAME" for p in self._families])

    def _load(self) -> dict[str, T]:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self.provider)
        return self._entries

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._load())

    def get(self, name: str) -> T:
        """The entry registered under ``name``.

        Raises:
            ConfigError: no such name; the message names the config key and the choices.
        """
        entries = self._load()
        if name in entries:
            return entries[name]
        prefix = self._family(name)
        if prefix is None:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose from {self.choices()}")
        return self._families[prefix](name[len(prefix):])

    def __contains__(self, name: object) -> bool:
        return name in self._load() or (isinstance(name, str) and self._family(name) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


#: Frame encoders (:class:`~activity.features.backbones.BackboneSpec` factories).
BACKBONES: Registry[Callable] = Registry("backbone", "features.backbone", "activity.features.backbones")
#: Video decoders (functions ``(path, *, sequential) -> VideoReader``).
DECODERS: Registry[Callable] = Registry("decoder", "features.decoder", "activity.data.decoders")
#: Brightness adjustments of decoded frames (functions ``(T, H, W, 3) uint8 -> same``).
ENHANCEMENTS: Registry[Callable] = Registry("enhancement", "features.enhance", "activity.transforms.adjust")
#: Temporal models over frame features (classes ``(in_dim, num_classes, ModelConfig) -> nn.Module``).
TEMPORAL_MODELS: Registry[type] = Registry("temporal model", "model.temporal", "activity.temporal.models")
#: The streams a clip's features are made of (descriptor classes; see :mod:`activity.features.streams`).
STREAMS: Registry[type] = Registry("stream", "features.streams", "activity.features.streams")
#: Baselines for cross-validation (pooling functions ``(N, T, D) -> (N, F)`` under a logistic regression).
BASELINES: Registry[Callable] = Registry("baseline", None, "activity.temporal.baselines")
#: Per-frame explanation methods (functions ``(model, features (T, D + M)) -> (probabilities (C,), importance (T, C))``).
EXPLAIN_METHODS: Registry[Callable] = Registry("explanation method", None, "activity.inference.explain")
#: Formats a whole model is exported to (:class:`~activity.inference.export_formats.ExportFormat`).
EXPORT_FORMATS: Registry = Registry("export format", None, "activity.inference.export_formats")
#: Result files of batch prediction (functions ``(predictions, skipped, out_dir) -> Path``).
RESULT_FORMATS: Registry[Callable] = Registry("results format", None, "activity.inference.results")
#: Result files of a timeline, by the same names (functions ``(timeline, out_dir, stem) -> list[Path]``).
TIMELINE_FORMATS: Registry[Callable] = Registry("timeline format", None, "activity.inference.results")
