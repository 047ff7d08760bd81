"""The streams a clip's features are made of, in one registry (:data:`activity.registry.STREAMS`).

``appearance`` is the frozen backbone's features of the sampled frames; it always comes first, and
its width is the backbone's. Every other stream is a *descriptor*: numbers a step computed from the
frames extraction decodes anyway (one decode for all streams), stored after the appearance features
in the order ``features.streams`` lists them, each read by its own temporal model in a fusion
(:class:`~activity.temporal.models.Fusion`). A descriptor is a frozen dataclass of its settings with

* ``dim``: numbers a step;
* ``settings()``: its settings in one string, part of the key of its own cache folder
  (:meth:`~activity.features.spec.FeatureSpec.stream_keys`; the backbone is not in it);
* ``partner_gap(fps)``: frames between a sampled frame and the partner it also needs (None: none);
* ``compute(frames, first, second, enhance)``: ``(T, dim)`` float32 from the sampled uint8 RGB
  frames ``(T, H, W, 3)`` and, for a stream with partners, each one's pair (``first``, ``second``),
  brightened as ``enhance`` says (the appearance stream's setting).

========== ========================================= ============================================
stream     what                                      per step
========== ========================================= ============================================
appearance the backbone's ImageNet features          the backbone's width (1280 for the default)
motion     optical-flow direction histograms         80 (:mod:`activity.features.motion`)
pose       BlazePose body landmarks, place and size  103 (:mod:`activity.features.pose`, ``make pose``)
========== ========================================= ============================================
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from activity.config import check_streams
from activity.errors import ActivityError
from activity.features.motion import MotionSpec
from activity.features.pose import PoseSpec
from activity.registry import STREAMS

APPEARANCE = "appearance"


class Descriptor(Protocol):
    """A stream computed from decoded frames rather than by the backbone (see the module)."""

    dim: int

    def settings(self) -> str: ...

    def partner_gap(self, fps: float) -> int | None: ...

    def compute(self, frames: np.ndarray, first: np.ndarray | None, second: np.ndarray | None,
                enhance: str) -> np.ndarray: ...


class Appearance:
    """The backbone's stream: computed by :class:`~activity.features.encoder.FrameEncoder`, not here."""


STREAMS.add(APPEARANCE, Appearance)
STREAMS.add("motion", MotionSpec)
STREAMS.add("pose", PoseSpec)


def descriptors_of(names: Sequence[str]) -> list[Descriptor]:
    """The descriptor streams (every one but appearance) of config names, with their default settings."""
    return [STREAMS.get(n)() for n in check_streams(names)[1:]]


def stream_widths(names: Sequence[str], in_dim: int) -> list[tuple[str, int]]:
    """``(name, numbers a step)`` of each stream of features ``in_dim`` wide: the descriptors' own widths,
    and appearance the rest (the backbone's width).

    Raises:
        ActivityError: the descriptors alone are as wide as the features, or wider.
    """
    rest = [(n, d.dim) for n, d in zip(check_streams(names)[1:], descriptors_of(names))]
    appearance = in_dim - sum(w for _, w in rest)
    if appearance < 1:
        raise ActivityError(f"features {in_dim} wide cannot hold the streams {', '.join(names)} "
                            f"({', '.join(f'{n} {w}' for n, w in rest)} numbers a step besides appearance)")
    return [(APPEARANCE, appearance), *rest]


def stream_names(settings: Sequence[str]) -> list[str]:
    """The config names of stored descriptor settings (:meth:`FeatureSpec.streams`), appearance first."""
    return [APPEARANCE, *(_by_settings(s)[0] for s in settings)]


def from_settings(settings: str) -> Descriptor:
    """The descriptor whose settings string is ``settings``.

    Raises:
        ActivityError: this version of activity computes no stream with those settings.
    """
    return _by_settings(settings)[1]


def _by_settings(settings: str) -> tuple[str, Descriptor]:
    for name in STREAMS.names()[1:]:
        stream = STREAMS.get(name)()
        if stream.settings() == settings:
            return name, stream
    made = ", ".join(STREAMS.get(n)().settings() for n in STREAMS.names()[1:])
    raise ActivityError(f"features {settings!r} are not computed by this version of activity (it computes {made})")
