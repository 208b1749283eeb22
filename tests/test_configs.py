"""Configs: one home per default; files with unknown keys or wrong types fail naming the key; --config FILE."""

from __future__ import annotations

import dataclasses

import pytest

from featurescope.axis import AxisConfig
from featurescope.cli import io
from featurescope.cli.main import build_parser, explicit_flags
from featurescope.configs import ConfigError
from featurescope.generate import GenerationConfig
from featurescope.persona import ExtractionConfig
from featurescope.posttrain import PosttrainConfig
from featurescope.stages import StagesConfig

CONFIGS = [GenerationConfig, AxisConfig, ExtractionConfig, PosttrainConfig, StagesConfig]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_round_trip_yaml_and_json(cls, tmp_path):
    c = cls()
    assert cls.from_yaml(c.to_yaml()) == c
    assert cls.from_json(c.to_json()) == c
    (tmp_path / "c.yaml").write_text(c.to_yaml())
    assert cls.from_file(tmp_path / "c.yaml") == c


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="max_new_token"):
        GenerationConfig.from_dict({"max_new_token": 3})


@pytest.mark.parametrize(
    "key,value,msg",
    [
        ("max_new_tokens", "64", "max_new_tokens: expected an integer"),
        ("max_new_tokens", 6.5, "max_new_tokens: expected an integer"),
        ("do_sample", 1, "do_sample: expected true or false"),
        ("temperature", "hot", "temperature"),
        ("top_p", [0.9], "top_p"),
    ],
)
def test_wrong_type_is_named(key, value, msg):
    with pytest.raises(ConfigError, match=msg):
        GenerationConfig.from_dict({key: value})


def test_literals_tuples_and_optionals():
    a = AxisConfig.from_dict({"instructions": "all", "n_roles": None, "temperature": 1})
    assert a.instructions == "all" and a.n_roles is None and a.temperature == 1.0
    with pytest.raises(ConfigError, match="instructions"):
        AxisConfig.from_dict({"instructions": "some"})
    p = PosttrainConfig.from_dict({"target_modules": ["q_proj"]})
    assert p.target_modules == ("q_proj",)
    with pytest.raises(ConfigError, match=r"target_modules\[1\]"):
        PosttrainConfig.from_dict({"target_modules": ["q_proj", 3]})
    with pytest.raises(ConfigError, match="expected a list"):
        PosttrainConfig.from_dict({"target_modules": "q_proj"})


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        AxisConfig.from_file(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("n_roles: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        AxisConfig.from_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        AxisConfig.from_file(tmp_path / "list.yaml")


def _parse(argv):
    args = build_parser().parse_args(argv)
    args.explicit = explicit_flags(argv)
    return args


def test_config_file_then_explicit_flags(tmp_path):
    f = tmp_path / "axis.yaml"
    f.write_text("n_roles: 7\nmax_new_tokens: 12\nseed: 3\n")
    # A flag given on the command line wins over the file, even when it equals the parser default.
    args = _parse(["axis", "collect", "--model", "m", "--out", str(tmp_path), "--config", str(f), "--seed", "0"])
    cfg = io.config_from_args(AxisConfig, args)
    assert (cfg.n_roles, cfg.max_new_tokens, cfg.seed) == (7, 12, 0)
    # Without --config: the library's defaults, overridden by the given flags only.
    cfg = io.config_from_args(
        AxisConfig, _parse(["axis", "collect", "--model", "m", "--out", str(tmp_path), "--n-roles", "2"])
    )
    assert cfg == dataclasses.replace(AxisConfig(), n_roles=2)
    f.write_text("n_role: 7\n")
    with pytest.raises(ConfigError, match="n_role"):
        io.config_from_args(
            AxisConfig, _parse(["axis", "collect", "--model", "m", "--out", str(tmp_path), "--config", str(f)])
        )


@pytest.mark.parametrize(
    "argv,cls,renamed",
    [
        (["axis", "collect", "--model", "m", "--out", "x"], AxisConfig, {}),
        (["persona", "run", "--trait", "evil", "--out", "x"], ExtractionConfig, {}),
        (["posttrain", "--out", "x"], PosttrainConfig, {}),
        (
            ["stages", "--base-sae", "a", "--post-sae", "b", "--out", "x"],
            StagesConfig,
            {"reuse_threshold": "threshold", "n_cards": "cards"},
        ),
    ],
    ids=["axis", "persona", "posttrain", "stages"],
)
def test_cli_defaults_agree_with_the_config(argv, cls, renamed):
    """A flag's parser default (when it has one) is the config's default: the config is the single home."""
    args = build_parser().parse_args(argv)
    d = cls()
    checked = 0
    for f in dataclasses.fields(cls):
        dest = renamed.get(f.name, f.name)
        v = getattr(args, dest, None)
        if v is None or isinstance(v, bool) and f.type not in ("bool", bool):
            continue
        if isinstance(v, str) and not isinstance(getattr(d, f.name), str):
            continue  # a comma list parsed by the command
        assert v == getattr(d, f.name), (
            f"--{dest.replace('_', '-')} defaults to {v!r}, {cls.__name__}.{f.name} to {getattr(d, f.name)!r}"
        )
        checked += 1
    assert checked >= 3
