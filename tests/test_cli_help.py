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
    """An action's own flags (the generic ``--config`` flags file every command takes is left out)."""
    parser = dict(_parsers())[" ".join(("featurescope", *argv))]
    generic = parser.get_default("config_kind") is not None
    return {
        a.dest
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and not (generic and a.dest == "config")
    }


def test_the_walk_reaches_every_command_and_action():
    paths = {p for p, _ in _parsers()}
    for cmd in ("models", "capture", "persona", "sae", "report", "export gguf", "judge train"):
        assert f"featurescope {cmd}" in paths
    for act in ("run", "extract", "rebuild", "steer", "monitor", "flag"):
        assert f"featurescope persona {act}" in paths
    assert {"featurescope sae train", "featurescope sae eval"} <= paths
    for act in ("massive", "handling", "decomposition"):
        assert f"featurescope inspect {act}" in paths
    for act in ("shared", "interpret", "steer"):
        assert f"featurescope features {act}" in paths


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
    fmt = argparse.ArgumentDefaultsHelpFormatter
    plain = [p for p, parser in _parsers() if not isinstance(parser._get_formatter(), fmt)]
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
        "sources",
    }
    assert _dests("sae", "train") == measure | train
    assert _dests("sae", "eval") == measure | {"sae", "sae_id", "hook", "allow_other_model"}


def test_inspect_and_features_actions_take_only_their_own_flags():
    texts = {"model", "trait", "written", "batch_size", "out"}
    steer = {"steer_layer", "alpha", "seeds", "n_questions"}
    assert _dests("inspect", "massive") == texts | {"n_texts"}
    assert _dests("inspect", "handling") == texts | {"layers", "seed"} | steer
    assert _dests("inspect", "decomposition") == {
        "vector",
        "sae",
        "sae_id",
        "seed",
        "out",
        "responses",
        "model",
        "n_boot",
    }
    common, judged = {"model", "sae", "out"}, {"trait", "judge"}
    assert _dests("features", "shared") == common | {"pairs", "n_perm", "shuffles"}
    assert _dests("features", "interpret") == common | judged | {"decomposition", "views", "k", "n_null", "measure"}
    assert _dests("features", "steer") == common | judged | {
        "latents",
        "mode",
        "value",
        "alpha",
        "n_random",
        "seeds",
        "n_questions",
        "max_new_tokens",
        "density_texts",
    }


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
        ["inspect", "massive", "--sae", "s", "--out", "x"],  # --sae: decomposition only
        ["inspect", "massive", "--layers", "2", "--out", "x"],
        ["inspect", "massive", "--seed", "1"],
        ["inspect", "massive", "--steer-layer", "2"],
        ["inspect", "handling", "--layers", "2", "--n-texts", "10"],
        ["inspect", "handling", "--layers", "2", "--vector", "v"],
        ["inspect", "decomposition", "--vector", "v", "--sae", "s", "--trait", "evil"],
        ["inspect", "decomposition", "--vector", "v", "--sae", "s", "--layers", "2"],
        ["features", "shared", "--latents", "1", "--out", "x"],  # --latents: steer only
        ["features", "shared", "--trait", "evil", "--out", "x"],
        ["features", "interpret", "--decomposition", "d", "--mode", "add", "--out", "x"],  # not taken for --model
        ["inspect", "massive", "--n-text", "4"],  # no abbreviated flags
        ["features", "interpret", "--decomposition", "d", "--pairs", "p", "--out", "x"],
        ["features", "steer", "--latents", "1", "--value", "2", "--views", "selectivity", "--out", "x"],
        ["features", "steer", "--latents", "1", "--value", "2", "--n-perm", "10", "--out", "x"],
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
        (["inspect"], "ACTION"),
        (["inspect", "handling", "--out", "o"], "--layers"),
        (["inspect", "handling", "--layers", "", "--out", "o"], "at least one value"),
        (["inspect", "handling", "--layers", "2,x"], "'x' is not an integer"),
        (["inspect", "handling", "--layers", "2", "--seeds", "0,a"], "'a' is not an integer"),
        (["inspect", "decomposition", "--sae", "s"], "--vector"),
        (["inspect", "decomposition", "--vector", "v"], "--sae"),
        (["features"], "ACTION"),
        (["features", "shared"], "--out"),
        (["features", "interpret", "--out", "o"], "--decomposition"),
        (["features", "interpret", "--decomposition", "d", "--views", ",", "--out", "o"], "at least one value"),
        (["features", "interpret", "--decomposition", "d", "--judge", "gpt", "--out", "o"], "unknown judge 'gpt'"),
        (["features", "steer", "--out", "o"], "--latents"),
        (["features", "steer", "--latents", "1,x", "--out", "o"], "'x' is not an integer"),
        (["features", "steer", "--latents", "", "--out", "o"], "at least one value"),
        (["features", "steer", "--latents", "1", "--seeds", "", "--out", "o"], "at least one value"),
        (["features", "steer", "--latents", "1", "--mode", "scale", "--out", "o"], "invalid choice"),
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
    a = p.parse_args(["inspect", "massive", "--model", "M", "--out", "D"])
    assert (a.command, a.action, a.model, a.out, a.n_texts, a.batch_size) == ("inspect", "massive", "M", "D", 48, 8)
    a = p.parse_args(["inspect", "handling", "--layers", "2, 9", "--steer-layer", "9", "--seeds", ""])
    assert (a.layers, a.steer_layer, a.seeds, a.alpha, a.out) == ([2, 9], 9, [], 8.0, None)
    a = p.parse_args(["inspect", "decomposition", "--vector", "V", "--sae", "S"])
    assert (a.vector, a.sae, a.sae_id, a.seed, a.out) == ("V", "S", None, 0, None)
    a = p.parse_args(["features", "shared", "--out", "D"])
    assert (a.action, a.model, a.sae, a.pairs, a.n_perm, a.shuffles) == (
        "shared",
        "offline:gemma-3-270m-sft",
        "featurescope:gemma-3-270m-sft/layer_9_resid_post",
        None,
        500,
        5,
    )
    a = p.parse_args(["features", "interpret", "--decomposition", "d", "--views", "selectivity, cosine", "--out", "D"])
    assert (a.views, a.k, a.judge, a.trait) == (["selectivity", "cosine"], 10, "auto", "evil")
    a = p.parse_args(["features", "steer", "--latents", "12, 40", "--judge", "lm:offline:gemma-3-270m", "--out", "D"])
    assert (a.latents, a.seeds, a.mode, a.value, a.judge) == (
        [12, 40],
        [0, 1, 2],
        "clamp",
        None,
        "lm:offline:gemma-3-270m",
    )


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
    info = {"name": "fake"}  # what a run summary records of the model

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


def _written(tmp_path) -> str:
    import json

    rows = [{"id": str(i), "question": f"q{i}?", "pos": f"bad {i}", "neg": f"good {i}"} for i in range(10)]
    src = tmp_path / "w.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    return str(src)


def test_inspect_actions_call_the_library_with_the_parsed_values(monkeypatch, tmp_path):
    import featurescope.cli.inspect as inspect_cli

    model, judge = _Model(), SimpleNamespace(name="fake-judge")
    loads: list[str] = []
    monkeypatch.setattr(inspect_cli, "load_model", lambda name: loads.append(name) or model)
    monkeypatch.setattr(inspect_cli, "default_judge", lambda: judge)
    massive, handling = _Recorder([]), _Recorder({})
    bias = {"k": 4, "fraction_explained_top_k": 0.5, "mean_tracking_latents": [], "threshold": 0.5}
    decomposition = _Recorder(
        {"hook": "h", "evidence": {"fraction_explained_null": {"per_k": {}}, "decoder_bias": bias}}
    )
    monkeypatch.setattr(inspect_cli, "run_massive", massive)
    monkeypatch.setattr(inspect_cli, "run_handling", handling)
    monkeypatch.setattr(inspect_cli, "run_decomposition", decomposition)
    src, out = _written(tmp_path), str(tmp_path / "o")

    assert main(["inspect", "massive", "--model", "M", "--written", src, "--n-texts", "6", "--out", out]) == 0
    ((args, kw),) = massive.calls
    assert args[0] is model and len(args[1]) == 6 and args[2] == out and kw == dict(source=src, batch_size=8)
    assert main(["inspect", "massive", "--written", src, "--n-texts", "0", "--batch-size", "2"]) == 0
    args, kw = massive.calls[-1]
    assert len(args[1]) == 20 and args[2] is None and kw == dict(source=src, batch_size=2)  # 0 = every text
    assert loads == ["M", "offline:gemma-3-270m"]

    argv = ["inspect", "handling", "--written", src, "--layers", "2,9", "--seed", "3", "--out", out]
    assert main(argv) == 0
    ((args, kw),) = handling.calls
    assert args[0] is model and len(args[1]) == 10 and args[2:] == ([2, 9], out)
    assert kw == dict(source=src, trait="evil", seed=3, batch_size=8, steer_layer=None, judge=None, alpha=8.0,
                      seeds=[0, 1, 2], n_questions=8)  # fmt: skip
    argv = ["inspect", "handling", "--written", src, "--layers", "9", "--steer-layer", "9", "--alpha", "4", "--seeds"]
    assert main([*argv, "0", "--n-questions", "3"]) == 0
    kw = handling.calls[-1][1]
    assert (kw["steer_layer"], kw["judge"], kw["alpha"], kw["seeds"], kw["n_questions"]) == (9, judge, 4.0, [0], 3)

    assert main(["inspect", "handling", "--written", src, "--layers", "2", "--steer-layer", "9"]) == 2
    assert len(handling.calls) == 2 and len(loads) == 4  # refused before the model loads
    assert main(["inspect", "decomposition", "--vector", "V", "--sae", "S", "--sae-id", "I", "--seed", "2"]) == 0
    assert decomposition.calls == [
        (("V", "S", None), dict(sae_id="I", seed=2, model=None, responses=None, responses_path=None, n_boot=200))
    ]
    rows = tmp_path / "responses.jsonl"
    rows.write_text('{"question": "q", "pos": "a", "neg": "b"}\n')
    argv = ["inspect", "decomposition", "--vector", "V", "--sae", "S", "--responses", str(rows), "--model", "M2"]
    assert main([*argv, "--n-boot", "9"]) == 0
    kw = decomposition.calls[-1][1]
    assert kw["model"] is model and kw["responses"] == [{"question": "q", "pos": "a", "neg": "b"}] and kw["n_boot"] == 9
    n_loads = len(loads)
    assert main(["inspect", "decomposition", "--vector", "V", "--sae", "S", "--responses", str(rows)]) == 2
    assert len(loads) == n_loads  # --responses without --model: refused before any model loads


@pytest.fixture
def feature_fakes(monkeypatch):
    import featurescope.features
    import featurescope.features.interpret
    import featurescope.features.steer
    import featurescope.judges.choose
    import featurescope.models
    import featurescope.saes
    import featurescope.traits

    f = SimpleNamespace(model=_Model(), sae=SimpleNamespace(name="fake-sae"), judge=SimpleNamespace(name="j"))
    f.trait = SimpleNamespace(eval_questions=("q1", "q2", "q3"))
    f.loads, f.judges = [], []
    monkeypatch.setattr(featurescope.models, "load_model", lambda name: f.loads.append(name) or f.model)
    monkeypatch.setattr(featurescope.saes, "load_sae", lambda name: f.loads.append(name) or f.sae)
    monkeypatch.setattr(featurescope.traits, "load_trait", lambda name: f.trait)
    monkeypatch.setattr(featurescope.judges.choose, "get_judge", lambda name: f.judges.append(name) or f.judge)
    monkeypatch.setattr(featurescope.features, "load_pairs", lambda path: ["pairs of", path])
    f.shared = _Recorder({"themes": {}, "n_shared": 0, "chance_counts": [0], "verdict": "v"})
    monkeypatch.setattr(featurescope.features, "run_shared", f.shared)
    null = {"mean": 0.0, "sd": 1.0, "n": 2}
    f.interpret = _Recorder({"uniform_null": null, "views": {}, "z_target": 3.0, "target_met": False})
    monkeypatch.setattr(featurescope.features.interpret, "run_interpret", f.interpret)
    monkeypatch.setattr(featurescope.features.interpret, "heldout_texts", lambda: [("a", "t1"), ("b", "t2")])
    f.contexts = _Recorder({"density": "D"})
    monkeypatch.setattr(featurescope.features.interpret, "latent_contexts", f.contexts)
    f.steer = _Recorder(
        {"hook": "h", "mode": "clamp", "value": 20.0, "alpha": 0.0, "seeds": [4, 5], "questions": ["q1", "q2"],
         "unsteered": [1.0, 2.0], "latents": {}}
    )  # fmt: skip
    monkeypatch.setattr(featurescope.features.steer, "latent_steering", f.steer)
    return f


def test_features_shared_and_interpret_call_the_library_with_the_parsed_values(feature_fakes, tmp_path):
    import json

    f, out = feature_fakes, str(tmp_path / "o")
    assert main(["features", "shared", "--pairs", "P", "--n-perm", "9", "--shuffles", "2", "--out", out]) == 0
    ((args, kw),) = f.shared.calls
    sae = "featurescope:gemma-3-270m-sft/layer_9_resid_post"
    assert args == (f.model, f.sae, out) and f.loads == ["offline:gemma-3-270m-sft", sae]
    assert kw == dict(pairs=["pairs of", "P"], n_perm=9, n_shuffles=2, sae_name=sae)
    assert main(["features", "shared", "--sae", "S", "--out", out]) == 0
    assert f.shared.calls[-1][1] == dict(pairs=None, n_perm=500, n_shuffles=5, sae_name="S")

    dec = tmp_path / "dec.json"
    top = {"selectivity": {"top": [[5, 0.3], [7, 0.2], [9, 0.1]]}, "attribution": {"top": [[1, 0.5], [2, 0.4]]}}
    dec.write_text(json.dumps({"results": {"decompositions": top}}))
    argv = ["features", "interpret", "--decomposition", str(dec), "--k", "2", "--n-null", "7", "--out", out]
    assert main(argv) == 0
    ((args, kw),) = f.interpret.calls
    assert args == (f.model, f.sae, {"selectivity": [5, 7], "attribution": [1, 2]}, f.trait, f.judge, out)
    assert kw == dict(n_null=7, sae_name=sae, measure="judge") and f.judges == ["auto"]
    argv = ["features", "interpret", "--decomposition", str(dec), "--views", "attribution", "--out", out]
    assert main([*argv, "--measure", "assistant-voice"]) == 0
    args, kw = f.interpret.calls[-1]
    assert args[3:5] == (None, None) and kw["measure"] == "assistant-voice" and f.judges == ["auto"]  # no judge


def test_features_interpret_checks_the_views_before_the_model_loads(feature_fakes, tmp_path, capsys):
    import json

    dec = tmp_path / "dec.json"
    dec.write_text(json.dumps({"results": {"decompositions": {"selectivity": {"top": [[5, 0.3]]}}}}))
    argv = ["features", "interpret", "--decomposition", str(dec), "--views", "selectivity,cosine", "--out", "o"]
    assert main(argv) == 2
    assert "no 'cosine' view" in capsys.readouterr().err and not feature_fakes.loads


def test_features_steer_calls_the_library_with_the_parsed_values(feature_fakes, tmp_path, capsys):
    f, out = feature_fakes, tmp_path / "o"
    assert main(["features", "steer", "--latents", "12,40", "--out", str(out)]) == 2  # clamp needs --value
    assert "--mode clamp needs --value" in capsys.readouterr().err and not f.loads
    argv = ["features", "steer", "--latents", "12, 40", "--value", "20", "--n-questions", "2", "--seeds", "4,5"]
    assert main([*argv, "--density-texts", "1", "--judge", "probe", "--out", str(out)]) == 0
    assert f.contexts.calls == [((f.model, f.sae, ["t1"]), {"n_top": 1})]
    ((args, kw),) = f.steer.calls
    assert args == (f.model, f.sae, [12, 40], f.trait, f.judge, ["q1", "q2"], "D") and f.judges == ["probe"]
    assert kw == dict(mode="clamp", value=20.0, alpha=0.0, n_random=4, seeds=(4, 5), max_new_tokens=48)
    assert (out / "steering.json").exists() and (out / "summary.json").exists()
    assert main(["features", "steer", "--latents", "3", "--mode", "add", "--alpha", "6", "--out", str(out)]) == 0
    kw = f.steer.calls[-1][1]
    assert (kw["mode"], kw["value"], kw["alpha"], kw["seeds"]) == ("add", None, 6.0, (0, 1, 2))


@pytest.mark.parametrize(
    "argv",
    [
        ["persona", "steer", "--vector", "v", "--n-q", "3", "--out", "x"],  # --n-questions, abbreviated
        ["axis", "steer", "--model", "m", "--axis", "a", "--alpha", "1", "--out", "x"],  # --alphas, abbreviated
        ["sae", "train", "--training", "10", "--out", "x"],  # --training-tokens, abbreviated
    ],
)
def test_abbreviated_flags_are_refused_everywhere(argv):
    """argparse accepts unambiguous prefixes by default, so a flag of another action could be read as this
    action's (``--mode`` as ``--model``); every featurescope parser refuses abbreviations."""
    from featurescope.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2


def test_every_runnable_command_takes_a_config_file():
    """Issue 15: every command accepts ``--config FILE.yaml`` (its config dataclass, or its own flags)."""
    from featurescope.cli.flagfile import leaves

    missing = [leaf.prog for leaf in leaves(build_parser()) if not any(a.dest == "config" for a in leaf._actions)]
    assert not missing, missing


def test_flag_file_sets_flags_checked_by_the_parser_and_recorded_in_the_summary(monkeypatch, tmp_path, capsys):
    """A flags file supplies a command's flags (lists as YAML lists), the command line overrides it, unknown keys
    and bad values are the parser's own errors, and summary.json records every setting the command ran with."""
    import json

    import featurescope.cli.sae as sae_cli
    from featurescope import runs

    model = _Model()
    monkeypatch.setattr(sae_cli, "load_model", lambda name, adapter=None: model)
    seen: dict[str, Any] = {}

    def train(model: Any, out: str, **kw: Any) -> None:
        seen.update(kw)
        runs.write_summary(out, "sae train", inputs={}, results={}, timings={})

    monkeypatch.setattr(sae_cli, "sae_train", train)
    cfg = tmp_path / "flags.yaml"
    cfg.write_text("k: 8\nlayers: [2, 9]\ntraining-tokens: 1000\n")
    out = tmp_path / "run"
    assert main(["sae", "train", "--config", str(cfg), "--k", "16", "--out", str(out)]) == 0
    assert seen["k"] == 16 and seen["layers"] == [2, 9] and seen["training_tokens"] == 1000  # the command line wins
    cli = json.loads((out / "summary.json").read_text())["cli"]
    assert cli["argv"][:3] == ["featurescope", "sae", "train"] and cli["settings"]["k"] == 16
    assert cli["settings"]["training_tokens"] == 1000 and cli["settings"]["config"] == str(cfg)
    assert runs.CLI_INVOCATION is None  # reset: a later Python call records no command line
    cfg.write_text("kk: 8\n")
    assert main(["sae", "train", "--config", str(cfg), "--out", str(out)]) == 2
    assert "unknown key 'kk'" in capsys.readouterr().err
    cfg.write_text("k: eight\n")
    with pytest.raises(SystemExit) as e:
        main(["sae", "train", "--config", str(cfg), "--out", str(out)])
    assert e.value.code == 2 and "invalid int value: 'eight'" in capsys.readouterr().err


def test_crosscoder_actions_take_only_their_own_flags():
    common = {"base", "post", "layer", "context", "eval_sequences", "out", "cards"}
    train = {"d_sae", "k", "training_tokens", "lr", "batch_tokens", "seed", "no_resume", "sources"}
    assert _dests("crosscoder", "train") == common | train
    assert _dests("crosscoder", "eval") == common | {"crosscoder", "sources"}
    assert _dests("crosscoder", "compare") == {"a", "b", "out", "threshold", "seed", "converged_at"}
