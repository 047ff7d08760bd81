"""``timm:NAME`` backbones: names pass the config, everything is read from the model's pretrained config,
the weights' tag is in the cache key, and missing weights without a network fail in one line.

Nothing is downloaded: models are built with ``pretrained=False`` (``timm.create_model`` is patched
where a backbone asks for the weights) or from a Hugging Face cache written here.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

timm = pytest.importorskip("timm")

from activity.cli import main  # noqa: E402
from activity.config import Config, FeatureConfig  # noqa: E402
from activity.errors import ActivityError, ConfigError  # noqa: E402
from activity.features.backbones import create_backbone, get_spec  # noqa: E402
from activity.features.spec import FeatureSpec  # noqa: E402

SMALL = "mobilenetv3_small_050"


def test_timm_names_pass_the_config_check_without_being_registered():
    cfg = Config()
    cfg.set("features.backbone", "timm:convnext_tiny.fb_in22k")
    assert cfg.check().features.backbone == "timm:convnext_tiny.fb_in22k"
    with pytest.raises(ConfigError, match=r"'timm:' is not allowed.*efficientnet_lite0.*timm:NAME"):
        cfg.set("features.backbone", "timm:")
    with pytest.raises(ActivityError, match="unknown timm model 'resnet99'.*activity backbones --timm"):
        get_spec("timm:resnet99")
    with pytest.raises(ActivityError, match="Invalid pretrained tag"):
        get_spec("timm:resnet18.no_such_tag")


def test_checking_a_timm_name_imports_no_timm():
    """The config check tests the prefix only: timm is imported when the backbone is built or described."""
    code = ("import sys; from activity.config import Config; Config().set('features.backbone', 'timm:resnet18'); "
            "print('timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", ["resnet18", SMALL, "efficientnet_b0", "vit_tiny_patch16_224.augreg_in21k_ft_in1k"])
def test_spec_is_read_from_the_pretrained_data_config(name):
    """Crop, resize, mean, std and interpolation are those of timm's own evaluation transform; the
    feature size is that of the model with ``num_classes=0``; the weights name carries the tag."""
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(name, pretrained=False)
    resize, crop, _, normalize = create_transform(**resolve_data_config({}, model=model)).transforms
    spec = get_spec("timm:" + name)
    pre = spec.preprocess
    assert (pre.resize_size, pre.crop_size, pre.interpolation) == (resize.size, crop.size[0], resize.interpolation.value)
    assert torch.allclose(torch.tensor(pre.mean), normalize.mean) and torch.allclose(torch.tensor(pre.std), normalize.std)
    model.reset_classifier(0)
    with torch.inference_mode():
        assert spec.feature_dim == model.eval()(torch.zeros(1, 3, pre.crop_size, pre.crop_size)).shape[-1]
    assert spec.weights == f"{model.pretrained_cfg['architecture']}.{model.pretrained_cfg['tag']}"
    assert spec.name == "timm:" + name and not spec.rewrite


def test_distinct_preprocessing_and_sizes_come_through():
    vit = get_spec("timm:vit_tiny_patch16_224.augreg_in21k_ft_in1k")
    assert (vit.preprocess.mean, vit.preprocess.std, vit.feature_dim) == ((0.5,) * 3, (0.5,) * 3, 192)
    assert get_spec("timm:resnet18").preprocess.resize_size == 235  # floor(224 / 0.95): a1_in1k's crop_pct
    assert get_spec(f"timm:{SMALL}").feature_dim == 1024  # after conv_head, not num_features (288)
    assert get_spec("timm:convnext_tiny.fb_in22k_ft_in1k_384").preprocess.crop_size == 384


def test_cache_key_holds_the_weights_tag_and_is_a_plain_folder_name():
    keys = {}
    for name in ["timm:resnet18", "timm:resnet18.a1_in1k", "timm:resnet18.a2_in1k", "resnet18"]:
        spec = FeatureSpec.from_config(FeatureConfig(backbone=name))
        keys[name] = spec.key()
        assert spec.key().startswith(name.replace(":", "_") + "-")
    assert FeatureSpec.from_config(FeatureConfig(backbone="timm:resnet18")).weights == "resnet18.a1_in1k"
    assert FeatureSpec.from_config(FeatureConfig(backbone="timm:resnet18.a2_in1k")).weights == "resnet18.a2_in1k"
    assert len(set(keys.values())) == 4
    scaled = FeatureSpec.from_config(FeatureConfig(backbone="timm:resnet18", image_size=160))
    assert scaled.preprocess.crop_size == 160 and scaled.key() != keys["timm:resnet18"]


@pytest.fixture
def untrained(monkeypatch):
    """``timm.create_model(pretrained=True)`` answered with a copy of an untrained model built here; records the calls."""
    real, calls, models = timm.create_model, [], {}

    def create_model(name, pretrained=False, **kwargs):
        calls.append((name, pretrained))
        if not pretrained:
            return real(name, pretrained=False, **kwargs)
        models.setdefault(name, real(name, pretrained=False).eval())
        return copy.deepcopy(models[name])

    monkeypatch.setattr(timm, "create_model", create_model)
    monkeypatch.setattr("activity.features.backbones._unreachable", lambda cfg: None)  # as if the hub were reachable
    return calls, models


def test_backbone_gives_the_models_pooled_features_and_its_logits(untrained, one_torch_thread):
    calls, models = untrained
    backbone = create_backbone(f"timm:{SMALL}")
    assert (SMALL, True) in calls
    ref = models[SMALL]
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    backbone.train()
    assert not backbone.training and all(not p.requires_grad for p in backbone.parameters())
    with torch.inference_mode():
        features, logits = backbone(x), backbone.classify(x)
        want = ref.forward_head(ref.forward_features(x), pre_logits=True)
        assert features.shape == (2, backbone.feature_dim) == (2, 1024)
        assert torch.allclose(features, want, atol=1e-5) and torch.allclose(logits, ref(x), atol=1e-5)


def test_a_timm_backbone_runs_on_onnxruntime_with_the_features_of_torch(untrained, tmp_path, one_torch_thread):
    """The CPU default runtime exports timm models too: same features, one model file per weights."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from activity.features.cache import FeatureCache
    from activity.features.extract import ExtractOptions, extract

    try:
        from utils import make_video
    except ImportError:  # tests/ imported as a package
        from tests.utils import make_video

    clips = [make_video(tmp_path / "v" / f"clip{i}.avi", 8, (64, 48), lossless=True, seed=i)[0] for i in range(2)]
    spec = FeatureSpec.from_config(FeatureConfig(backbone=f"timm:{SMALL}", num_frames=4, streams=["appearance"], image_size=96))
    got = {}
    for runtime in ("eager", "onnxruntime"):
        root = tmp_path / runtime
        got[runtime] = extract(clips, spec, FeatureCache(root, spec), lambda: create_backbone(spec.backbone),
                               ExtractOptions(workers=0, progress=False, runtime=runtime, cache_dir=root))
    assert [r.runtime for r in got.values()] == ["eager", "onnxruntime"] and got["onnxruntime"].notes == []
    for p in clips:
        a, b = (got[r].features[p].astype(np.float32) for r in ("eager", "onnxruntime"))
        scale = np.abs(a).max()  # untrained weights: small features
        assert a.shape == (4, 1024) and scale > 0 and np.abs(a - a[:1]).max() > 0.1 * scale  # frames differ
        np.testing.assert_allclose(b, a, rtol=2**-9, atol=2**-8 * scale)
    (model,) = (tmp_path / "onnxruntime" / "onnx").glob("*.onnx")
    assert model.name.startswith(f"timm_{SMALL}-96-")


def _write_hf_cache(root, repo: str, state_dict: dict) -> None:
    """A Hugging Face hub cache holding ``model.safetensors`` of ``repo``, laid out as huggingface_hub writes it."""
    from safetensors.torch import save_file

    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, folder / "snapshots" / ("0" * 40) / "model.safetensors")


def test_cached_weights_load_without_touching_the_network(tmp_path, monkeypatch, one_torch_thread):
    import huggingface_hub.constants
    import timm.models._hub

    ref = timm.create_model(SMALL, pretrained=False).eval()
    _write_hf_cache(tmp_path, f"timm/{SMALL}.lamb_in1k", ref.state_dict())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", _no_network)  # what timm downloads with
    spec = get_spec(f"timm:{SMALL}")
    assert spec.weights_available()
    backbone = create_backbone(f"timm:{SMALL}")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.allclose(backbone.classify(x), ref(x), atol=1e-5)


def _no_network(*args, **kwargs):
    from huggingface_hub.errors import LocalEntryNotFoundError

    raise LocalEntryNotFoundError("cannot find the requested files in the local cache")


def test_missing_weights_without_a_network_give_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(timm, "create_model", _no_network)
    assert not get_spec("timm:resnet18").weights_available()
    with pytest.raises(ActivityError) as e:
        create_backbone("timm:resnet18")
    msg = str(e.value)
    assert "\n" not in msg and "efficientnet_lite0" in msg and "HF_HOME" in msg and "resnet18.a1_in1k" in msg


def test_no_route_to_the_hub_fails_at_once_without_trying_to_download(tmp_path, monkeypatch):
    """No network and no HF_HUB_OFFLINE: one connection attempt, then the one line (the hub client's own
    retries took about 45 s)."""
    import socket

    import huggingface_hub.constants

    def refused(address, timeout=None):
        assert address == ("huggingface.co", 443) and timeout is not None and timeout <= 5
        raise OSError(101, "Network is unreachable")

    def download(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setattr(timm, "create_model", download)
    with pytest.raises(ActivityError) as e:
        create_backbone("timm:resnet18")
    msg = str(e.value)
    assert "\n" not in msg and "no connection to huggingface.co: Network is unreachable" in msg
    assert "efficientnet_lite0" in msg and "HF_HOME" in msg


def test_offline_hub_with_an_empty_cache_fails_in_one_line(tmp_path):
    """The real thing: huggingface_hub in offline mode, nothing cached; the command exits 1 with one error line."""
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    code = ("from activity.features.backbones import create_backbone\n"
            "from activity.errors import ActivityError\n"
            f"try:\n    create_backbone('timm:{SMALL}')\nexcept ActivityError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.count("\n") == 1 and "efficientnet_lite0" in out and "HF_HOME" in out and str(tmp_path) in out


def test_backbones_command_lists_the_pretrained_timm_models(capsys):
    assert main(["backbones", "--timm", "mobilenetv3_small_05*"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["backbone", "features", "input", "offline", "weights"]
    line = next(l for l in out.splitlines() if l.startswith(f"timm:{SMALL}.lamb_in1k"))
    assert "224px" in line and f"timm/{SMALL}.lamb_in1k" in line
    assert line.split()[1] == str(get_spec(f"timm:{SMALL}.lamb_in1k").feature_dim) == "1024"  # what extraction gives
    assert main(["backbones", "--timm", "no_such_model*"]) == 1
    assert "no pretrained timm model matches" in capsys.readouterr().err
    assert main(["backbones"]) == 0
    assert "timm:NAME" in capsys.readouterr().out
