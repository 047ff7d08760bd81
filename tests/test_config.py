"""Config: defaults, YAML, overrides and the checks that name the bad key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from activity import config as config_mod
from activity.config import (
    Config,
    FeatureConfig,
    ModelConfig,
    TrainConfig,
    load_config,
    save_config,
)
from activity.errors import ActivityError, ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults():
    cfg = load_config()
    assert cfg == Config()
    f, m, t = cfg.features, cfg.model, cfg.train
    assert (f.backbone, f.num_frames, f.views, f.image_size, f.decoder) == ("efficientnet_lite0", 16, 1, None, "auto")
    assert (f.frame_fit, f.enhance) == ("crop", "dark")
    assert (m.temporal, m.projection, m.hidden_size, m.num_layers, m.pooling, m.frame_differences, m.ensemble) == ("lstm", 64, 64, 1, "attention", True, 5)
    assert (m.dropout, m.input_dropout) == (0.5, 0.2)
    assert (t.epochs, t.batch_size, t.lr, t.weight_decay, t.patience, t.val_fraction, t.seed) == (60, 32, 1e-3, 1e-2, 15, 0.2, 0)
    assert t.label_smoothing == 0.1
    assert set(cfg.to_dict()) == {"features", "model", "train"}
    # every field documents itself
    for section in (FeatureConfig, ModelConfig, TrainConfig):
        for fld in dataclasses.fields(section):
            assert fld.metadata.get("help"), f"{section.__name__}.{fld.name} has no help"


def test_configs_are_independent():
    a, b = Config(), Config()
    a.set("model.hidden_size", 8)
    assert b.model.hidden_size == ModelConfig().hidden_size != 8


def test_yaml_load(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "features:\n  num_frames: 8\n  image_size: 160\n  decoder: opencv\n"
        "model:\n  temporal: mean\n  dropout: 0   # an int for a float field\n"
        "train:\n  epochs: 3\n  lr: 0.01\n"
    )
    cfg = load_config(p)
    assert cfg.features.num_frames == 8 and cfg.features.image_size == 160 and cfg.features.decoder == "opencv"
    assert cfg.model.temporal == "mean"
    assert cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.01
    # untouched keys keep their defaults
    assert cfg.model.hidden_size == ModelConfig().hidden_size and cfg.train.batch_size == TrainConfig().batch_size


@pytest.mark.parametrize("text", ["", "features:\n", "# only a comment\n"])
def test_empty_yaml_and_empty_sections_give_defaults(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    assert load_config(p) == Config()


def test_save_and_load_round_trip(tmp_path):
    cfg = load_config(None, ["model.hidden_size=32", "features.image_size=64", "train.lr=0.5"])
    p = tmp_path / "saved.yaml"
    save_config(cfg, p)
    assert yaml.safe_load(p.read_text())["model"]["hidden_size"] == 32
    assert load_config(p) == cfg



def test_save_that_fails_before_it_is_on_disk_keeps_the_old_config(tmp_path, monkeypatch):
    import activity.io

    p = tmp_path / "config.yaml"
    save_config(Config(), p)
    before = p.read_text()

    def no_space(fd: int) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(activity.io.os, "fsync", no_space)
    with pytest.raises(OSError, match="no space"):
        save_config(load_config(None, ["model.hidden_size=32"]), p)
    assert p.read_text() == before
    assert [q.name for q in tmp_path.iterdir()] == ["config.yaml"]

def test_overrides_dotted_and_bare():
    cfg = load_config(
        None,
        [
            "model.hidden_size=64",
            "epochs=5",  # bare, unambiguous
            "temporal=mean",
            "features.image_size=null",
            "image_size=96",
            "frame_differences=false",
            "lr=0.0005",
            "backbone=resnet18",
            " seed = 3",
        ],
    )
    assert cfg.model.hidden_size == 64
    assert cfg.train.epochs == 5
    assert cfg.model.temporal == "mean"
    assert cfg.features.image_size == 96
    assert cfg.model.frame_differences is False
    assert cfg.train.lr == 0.0005
    assert cfg.features.backbone == "resnet18"
    assert cfg.train.seed == 3


def test_overrides_apply_on_top_of_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 3\n  batch_size: 4\n")
    cfg = load_config(p, ["train.epochs=7"])
    assert cfg.train.epochs == 7 and cfg.train.batch_size == 4


def test_optional_field_accepts_empty_value():
    cfg = load_config(None, ["image_size=128", "image_size="])
    assert cfg.features.image_size is None


def test_scientific_notation_for_floats():
    cfg = load_config(None, ["train.lr=1e-4", "weight_decay=5e-2"])
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.train.weight_decay == pytest.approx(5e-2)


# ---------------------------------------------------------------- errors that name the key


@pytest.mark.parametrize(
    "override, names",
    [
        ("model.hiden_size=3", "model.hiden_size"),  # unknown key in a known section
        ("modle.hidden_size=3", "modle"),  # unknown section
        ("hiden_size=3", "hiden_size"),  # unknown bare key
        ("train.epochs=abc", "train.epochs"),  # wrong type
        ("train.epochs=2.5", "train.epochs"),  # float for an int
        ("train.epochs=true", "train.epochs"),  # bool is not an int
        ("train.lr=fast", "train.lr"),
        ("model.frame_differences=1", "model.frame_differences"),  # int is not a bool
        ("features.backbone=7", "features.backbone"),
        ("features.num_frames=0", "features.num_frames"),  # out of range
        ("features.num_frames=513", "features.num_frames"),
        ("model.dropout=0.99", "model.dropout"),
        ("train.lr=-1", "train.lr"),
        ("train.patience=-1", "train.patience"),
        ("features.image_size=16", "features.image_size"),
        ("model.temporal=gru", "model.temporal"),  # bad Literal
        ("features.decoder=ffmpeg", "features.decoder"),
        ("features.frame_fit=zoom", "features.frame_fit"),
        ("enhance=hdr", "features.enhance"),
        ("features.enhance=true", "features.enhance"),
        ("model.pooling=max", "model.pooling"),
        ("train.epochs=", "train.epochs"),  # empty for a required value
        ("epochs", "epochs"),  # not key=value
    ],
)
def test_bad_override_raises_config_error_naming_the_key(override, names):
    with pytest.raises(ConfigError) as ei:
        load_config(None, [override])
    msg = str(ei.value)
    assert names in msg
    assert "\n" not in msg
    assert isinstance(ei.value, ActivityError)  # printed as one line by the CLI


def test_literal_error_lists_the_choices():
    with pytest.raises(ConfigError, match="lstm, mean"):
        load_config(None, ["model.temporal=gru"])


def test_out_of_range_error_gives_the_bounds():
    with pytest.raises(ConfigError, match=r"out of range \[1, 512\]"):
        load_config(None, ["num_frames=1000"])


@pytest.mark.parametrize(
    "text, names",
    [
        ("model:\n  hidden: 3\n", "model.hidden"),
        ("modle:\n  hidden_size: 3\n", "modle"),
        ("train:\n  epochs: many\n", "train.epochs"),
        ("train:\n  batch_size: 0\n", "train.batch_size"),
        ("model:\n  temporal: transformer\n", "model.temporal"),
        ("model: 3\n", "model"),
        ("- a\n- b\n", "mapping"),
        ("train: [epochs: 3\n", "not valid YAML"),
    ],
)
def test_bad_yaml_raises_config_error_naming_file_and_key(tmp_path, text, names):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert names in str(ei.value)
    assert str(p) in str(ei.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_ambiguous_bare_key(monkeypatch):
    """No key is shared by two sections today; fake one to check the rule."""

    @dataclasses.dataclass
    class Extra:
        epochs: int = 1

    real = config_mod._sections
    monkeypatch.setattr(config_mod, "_sections", lambda: {**real(), "extra": Extra})
    cfg = Config()
    with pytest.raises(ConfigError, match="ambiguous") as ei:
        cfg.apply_overrides(["epochs=3"])
    assert "train.epochs" in str(ei.value) and "extra.epochs" in str(ei.value)
    cfg.apply_overrides(["train.epochs=3"])  # the dotted form still works
    assert cfg.train.epochs == 3


def test_no_bare_key_is_ambiguous_today():
    names = [f.name for s in (FeatureConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(s)]
    assert len(names) == len(set(names))


def test_default_yaml_matches_defaults():
    p = REPO / "configs" / "default.yaml"  # tracked: a missing file must fail, not skip
    assert load_config(p) == Config()


def test_default_yaml_spells_out_every_key():
    p = REPO / "configs" / "default.yaml"  # tracked: a missing file must fail, not skip
    data = yaml.safe_load(p.read_text())
    assert {s: set(v) for s, v in data.items()} == {s: set(v) for s, v in Config().to_dict().items()}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_rejected(value):
    with pytest.raises(ConfigError, match="train.lr must be a finite number"):
        Config().apply_overrides([f"train.lr={value}"])
