"""The command line is consistent (issue 20): every argument documented, every `--help` shows defaults, `--out` is a
run folder, and `persona` / `sae` actions take only their own flags (checked at parse time)."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest

from featurescope.cli.main import build_parser, main


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the CLI with its command path, the top-level one first."""
    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        found.append((path, parser))
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    walk(child, f"{path} {name}")

    walk(build_parser(), "featurescope")
    return found


def _dests(*argv: str) -> set[str]:
    parser = dict(_parsers())[" ".join(("featurescope", *argv))]
    return {a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction)}


def test_the_walk_reaches_every_command_and_action():
    paths = {p for p, _ in _parsers()}
    for cmd in ("models", "capture", "persona", "sae", "report", "export gguf", "judge train"):
        assert f"featurescope {cmd}" in paths
    for act in ("run", "extract", "rebuild", "steer", "monitor", "flag"):
        assert f"featurescope persona {act}" in paths
    assert {"featurescope sae train", "featurescope sae eval"} <= paths


def test_every_argument_has_help():
    missing = []
    for path, parser in _parsers():
        for a in parser._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            if not a.help or a.help == argparse.SUPPRESS:
                missing.append((path, a.option_strings or a.dest))
            if isinstance(a, argparse._SubParsersAction):  # each subcommand is listed with a line of its own
                missing += [(path, c.dest) for c in a._choices_actions if not c.help]
    assert not missing, f"arguments without help: {missing}"


def test_every_parser_shows_defaults():
    plain = [
        p for p, parser in _parsers() if not issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
    ]
    assert not plain, f"parsers whose --help does not show defaults: {plain}"
    for path, parser in _parsers():
        assert parser.format_help(), path  # a stray % in a help string fails here, not in front of a user


def test_out_is_a_run_folder_everywhere():
    for path, parser in _parsers():
        for a in parser._actions:
            if "--out" in a.option_strings:
                assert not isinstance(a.type, argparse.FileType), path
                assert a.type in (None, str), f"{path} --out: type {a.type}"


def test_persona_and_sae_actions_take_only_their_own_flags():
    common = {"model", "out"}
    extraction = {"config", "handling", "outlier_k", "seed"}
    generated = extraction | {"n_questions", "n_pairs", "max_new_tokens", "pos_threshold", "neg_threshold"}
    vector = {"vector", "layer", "allow_other_model"}
    run = {"alphas", "alpha", "layers", "n_eval_questions", "n_monitor_questions", "controls", "seeds", "dataset"}
    expected = {
        "run": common | {"trait"} | generated | run,
        "extract": common | {"trait", "written", "ray", "workers", "gpus_per_worker"} | generated,
        "rebuild": common | {"trait", "responses"} | extraction,
        "steer": common | vector | {"alphas", "n_questions", "seeds", "controls", "seed", "max_new_tokens"},
        "monitor": common | vector | {"n_questions", "seeds", "max_new_tokens"},
        "flag": common | vector | {"dataset", "seed", "max_new_tokens"},
    }
    for act, dests in expected.items():
        assert _dests("persona", act) == dests, act
    measure = {"model", "adapter", "context", "eval_sequences", "ce_batches", "out"}
    train = {
        "layers",
        "training_tokens",
        "d_sae",
        "k",
        "lr",
        "batch_tokens",
        "dead_window",
        "store_batch",
        "seed",
        "outlier_k",
    }
    assert _dests("sae", "train") == measure | train
    assert _dests("sae", "eval") == measure | {"sae", "sae_id", "hook", "allow_other_model"}


@pytest.mark.parametrize(
    "argv",
    [
        ["persona", "extract", "--alphas", "1", "--out", "x"],  # --alphas: steer / run only
        ["persona", "extract", "--vector", "v", "--out", "x"],
        ["persona", "run", "--vector", "v", "--out", "x"],
        ["persona", "steer", "--vector", "v", "--written", "w", "--out", "x"],
        ["persona", "monitor", "--vector", "v", "--controls", "0", "--out", "x"],
        ["persona", "flag", "--vector", "v", "--dataset", "d", "--alphas", "1", "--out", "x"],
        ["persona", "rebuild", "--responses", "r", "--layer", "3", "--out", "x"],
        ["sae", "train", "--sae", "s", "--out", "x"],
        ["sae", "eval", "--sae", "s", "--layers", "6", "--out", "x"],
    ],
)
def test_a_flag_of_another_action_is_rejected(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_flags_follow_the_action(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["persona", "--model", "m", "extract", "--out", "x"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needs",
    [
        (["persona", "steer", "--out", "x"], "--vector"),
        (["persona", "flag", "--vector", "v", "--out", "x"], "--dataset"),
        (["persona", "rebuild", "--out", "x"], "--responses"),
        (["persona", "extract"], "--out"),
        (["sae", "eval", "--out", "x"], "--sae"),
        (["persona"], "ACTION"),
        (["persona", "steer", "--vector", "v", "--alphas=1,x", "--out", "o"], "'x' is not a number"),
        (["persona", "steer", "--vector", "v", "--alphas=", "--out", "o"], "at least one value"),
        (["persona", "monitor", "--vector", "v", "--seeds", "0,a", "--out", "o"], "'a' is not an integer"),
        (["persona", "run", "--layers", "2,x", "--out", "o"], "'x' is not an integer"),
        (["persona", "extract", "--handling", "mean", "--out", "o"], "invalid choice"),
        (["sae", "train", "--layers", "", "--out", "o"], "at least one value"),
        (["export", "gguf", "--vector", "v", "--layers", "1,a", "--out", "o"], "'a' is not an integer"),
    ],
)
def test_missing_and_malformed_flags_are_parse_errors(argv, needs, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and needs in capsys.readouterr().err


def test_the_command_line_shape_is_unchanged():
    p = build_parser()
    a = p.parse_args(["persona", "extract", "--trait", "evil", "--out", "D"])
    assert (a.command, a.action, a.trait, a.out, a.written, a.ray) == ("persona", "extract", "evil", "D", None, None)
    a = p.parse_args(["persona", "steer", "--vector", "v.safetensors", "--layer", "9", "--out", "D"])
    assert (a.alphas, a.seeds, a.controls, a.layer) == ([-12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0], [0, 1, 2], 2, 9)
    a = p.parse_args(["persona", "steer", "--vector", "v", "--alphas=-8,0,8", "--steer-seeds", "", "--out", "D"])
    assert (a.alphas, a.seeds) == ([-8.0, 0.0, 8.0], [])
    a = p.parse_args(["persona", "run", "--layers", "2, 4", "--out", "D"])
    assert (a.layers, a.alpha, a.dataset) == ([2, 4], 8.0, None)
    a = p.parse_args(["sae", "train", "--layers", "2,9", "--out", "D"])
    assert (a.action, a.layers) == ("train", [2, 9])


# The same library calls with the same values: the library functions replaced by recorders (no model is loaded).


class _Recorder:
    def __init__(self, ret: Any = None) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.ret = ret

    def __call__(self, *a: Any, **k: Any) -> Any:
        self.calls.append((a, k))
        return self.ret


class _Model:
    name = "fake"

    def resid_hook(self, layer: int) -> str:
        return f"blocks.{layer}.hook_resid_post"


class _Vector:
    def check_fits(self, *a: Any, **k: Any) -> None:
        self.fits = (a, k)


@pytest.fixture
def fakes(monkeypatch):
    import featurescope.judge
    import featurescope.models
    import featurescope.persona
    import featurescope.persona.commands as commands

    model, vector, judge = _Model(), _Vector(), SimpleNamespace(name="fake-judge")
    monkeypatch.setattr(featurescope.models, "load_model", lambda *a, **k: model)
    monkeypatch.setattr(featurescope.judge, "default_judge", lambda: judge)
    monkeypatch.setattr(featurescope.persona.PersonaVector, "load", staticmethod(lambda p: vector))
    rec = {
        "steer": _Recorder(SimpleNamespace(control=None)),
        "extract": _Recorder(
            {"separation": {}, "best_separation_layer": None, "counts": {"kept_pos": 0, "kept_neg": 0}}
        ),
    }
    monkeypatch.setattr(commands, "persona_steer", rec["steer"])
    monkeypatch.setattr(commands, "persona_extract", rec["extract"])
    rec["run"] = _Recorder({"chosen_layer": 1, "monitor": {"r_samples": 0.0, "r_levels": 0.0}, "flagging": {}})
    monkeypatch.setattr(featurescope.persona, "run_persona", rec["run"])
    return SimpleNamespace(model=model, vector=vector, judge=judge, rec=rec)


def test_persona_steer_calls_the_library_with_the_parsed_values(fakes, tmp_path):
    argv = ["persona", "steer", "--vector", "v.st", "--layer", "3", "--alphas=-4,0,4", "--n-questions", "2"]
    assert main([*argv, "--steer-seeds", "0,1", "--controls", "1", "--seed", "5", "--out", str(tmp_path)]) == 0
    ((args, kw),) = fakes.rec["steer"].calls
    assert args == (fakes.model, fakes.vector, fakes.judge, tmp_path)
    started = kw.pop("started")
    assert isinstance(started, float)
    assert kw == dict(
        layer=3, alphas=[-4.0, 0.0, 4.0], n_questions=2, seeds=[0, 1], controls=1, seed=5, vector_path="v.st"
    )
    assert fakes.vector.fits == ((fakes.model, "blocks.3.hook_resid_post"), {"allow_other_model": False})


def test_persona_steer_controls_need_alpha_zero_before_the_model_loads(fakes, tmp_path, capsys):
    assert main(["persona", "steer", "--vector", "v", "--alphas=1,2", "--out", str(tmp_path)]) == 2
    assert "--controls needs alpha 0" in capsys.readouterr().err and not fakes.rec["steer"].calls


def test_persona_extract_and_run_pass_the_extraction_config(fakes, tmp_path):
    from featurescope.persona import ExtractionConfig

    argv = [
        "persona",
        "extract",
        "--trait",
        "evil",
        "--n-questions",
        "3",
        "--pos-threshold",
        "10",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    ((args, kw),) = fakes.rec["extract"].calls
    assert args == (fakes.model, "evil", fakes.judge, tmp_path, ExtractionConfig(n_questions=3, pos_threshold=10.0))
    assert kw == {"pool": None, "written": None, "ray": None, "workers": 2}
    assert main(["persona", "run", "--layers", "1,3", "--alphas=0,8", "--seeds", "", "--out", str(tmp_path)]) == 0
    ((args, kw),) = fakes.rec["run"].calls
    assert args == (fakes.model, "evil", fakes.judge, tmp_path)
    assert kw == dict(
        extraction=ExtractionConfig(), layers=[1, 3], alpha=8.0, alphas=[0.0, 8.0], n_eval_questions=8,
        n_monitor_questions=3, n_random_controls=2, seeds=[],
    )  # fmt: skip


def test_sae_actions_call_the_library_with_the_parsed_values(monkeypatch, tmp_path):
    import featurescope.cli.sae as sae_cli

    model = _Model()
    loads: list[tuple[Any, ...]] = []
    monkeypatch.setattr(sae_cli, "load_model", lambda name, adapter=None: loads.append((name, adapter)) or model)
    train, ev = _Recorder(), _Recorder({"fve": 1.0, "density_hist": []})
    monkeypatch.setattr(sae_cli, "sae_train", train)
    monkeypatch.setattr(sae_cli, "sae_eval", ev)
    assert main(["sae", "train", "--layers", "2, 9", "--k", "8", "--context", "64", "--out", str(tmp_path)]) == 0
    ((args, kw),) = train.calls
    assert args == (model, str(tmp_path)) and kw["layers"] == [2, 9] and kw["k"] == 8 and kw["context"] == 64
    assert "--layers 2,9 " in kw["retrain"] and (kw["eval_sequences"], kw["ce_batches"]) == (128, 4)
    assert kw["outlier_k"] == 4.0 and "--outlier-k 4.0 " in kw["retrain"]
    assert main(["sae", "train", "--outlier-k", "0", "--out", str(tmp_path)]) == 0
    assert train.calls[-1][1]["outlier_k"] is None  # 0 = keep every token
    assert main(["sae", "eval", "--sae", "S", "--sae-id", "I", "--adapter", "A", "--out", str(tmp_path)]) == 0
    ((args, kw),) = ev.calls
    assert args == (model, "S", str(tmp_path)) and loads[-1] == ("offline:gemma-3-270m", "A")
    kw.pop("load_s")
    assert kw == dict(sae_id="I", hook=None, allow_other_model=False, context=128, eval_sequences=128, ce_batches=4)
