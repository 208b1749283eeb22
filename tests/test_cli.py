import json
import subprocess
import sys

import pytest

from featurescope.cli import main


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("models", "capture", "demo"):
        assert cmd in out


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "featurescope.cli", "--help"], capture_output=True, text=True, check=True)
    assert "capture" in r.stdout and "models" in r.stdout


def test_models_json(capsys, monkeypatch):
    from featurescope import models

    monkeypatch.setattr(models.hub, "hub_reachable", lambda *a, **k: False)
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert "offline:gemma-3-270m" in names and "google/gemma-3-270m-it" in names


def test_capture_writes_store_and_summary(tiny_hf_folder, tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps(
                {"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}]}
            )
            for i in range(5)
        )
    )
    out = tmp_path / "run"
    rc = main(
        [
            "capture",
            "--model",
            str(tiny_hf_folder),
            "--prompts",
            str(prompts),
            "--layers",
            "0,1",
            "--reduction",
            "response_mean",
            "--out",
            str(out),
            "--quiet",
            "--shard-size",
            "2",
        ]
    )
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["command"] == "capture" and s["inputs"]["n_prompts"] == 5
    assert s["results"]["shapes"]["blocks.1.hook_resid_post"] == [5, 32]
    assert s["inputs"]["model"]["n_layers"] == 2 and "capture" in s["timings_s"]
    assert (out / "activations" / "manifest.json").exists()


def test_capture_bad_input_is_a_clear_error(tiny_hf_folder, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert main(["capture", "--model", str(tiny_hf_folder), "--prompts", str(empty), "--out", str(tmp_path / "r")]) == 2
    assert "empty" in capsys.readouterr().err
    ok = tmp_path / "p.txt"
    ok.write_text("hello\n")
    assert (
        main(
            [
                "capture",
                "--model",
                str(tiny_hf_folder),
                "--prompts",
                str(ok),
                "--hooks",
                "blocks.9.hook_resid_post",
                "--out",
                str(tmp_path / "r2"),
            ]
        )
        == 2
    )
    assert "out of range" in capsys.readouterr().err
    assert not (tmp_path / "r2" / "summary.json").exists()
    assert (
        main(["capture", "--model", "nonexistent-model-xyz", "--prompts", str(ok), "--out", str(tmp_path / "r3")]) == 2
    )
    assert "unknown model" in capsys.readouterr().err


def test_persona_commands_end_to_end_on_a_tiny_model(tiny_hf_folder, tmp_path):
    """Mechanics of extract -> steer -> monitor -> flag (thresholds opened so a random model keeps everything)."""
    m = str(tiny_hf_folder)
    ex = tmp_path / "ex"
    assert (
        main(
            [
                "persona",
                "extract",
                "--model",
                m,
                "--trait",
                "evil",
                "--n-questions",
                "2",
                "--n-pairs",
                "1",
                "--max-new-tokens",
                "4",
                "--pos-threshold",
                "0",
                "--neg-threshold",
                "101",
                "--out",
                str(ex),
            ]
        )
        == 0
    )
    s = json.loads((ex / "summary.json").read_text())
    assert s["results"]["counts"] == {"generated_per_side": 2, "kept_pos": 2, "kept_neg": 2}
    assert len(s["results"]["separation"]["cohens_d"]) == 2 and (ex / "layers.png").exists()
    vec = str(ex / "evil.response_mean.safetensors")
    rb = tmp_path / "rb"
    assert main(["persona", "rebuild", "--model", m, "--responses", str(ex / "responses.jsonl"), "--out", str(rb)]) == 0
    s = json.loads((rb / "summary.json").read_text())
    assert s["results"]["counts"] == {"kept_pos": 2, "kept_neg": 2}
    assert len(s["results"]["reread"]["cosine_with_instruction_vector"]) == 2
    assert (
        s["inputs"]["config"]["handling"] == "drop_massive" and (rb / "evil.reread.response_mean.safetensors").exists()
    )
    with pytest.raises(SystemExit) as e:  # --responses is required: a parse error
        main(["persona", "rebuild", "--model", m, "--out", str(rb)])
    assert e.value.code == 2
    assert (
        main(
            [
                "persona",
                "steer",
                "--model",
                m,
                "--vector",
                vec,
                "--layer",
                "1",
                "--alphas=-2,0,2",
                "--n-questions",
                "2",
                "--max-new-tokens",
                "4",
                "--out",
                str(tmp_path / "st"),
            ]
        )
        == 0
    )
    st = json.loads((tmp_path / "st" / "summary.json").read_text())["results"]
    rows = st["rows"]
    assert [r["alpha"] for r in rows] == [-2.0, 0.0, 2.0] and all(len(r["scores"]) == 2 for r in rows)
    ctl = st["control"]  # the steering null: 2 random vectors of equal norm at the same alphas
    assert len(ctl["controls"]) == 2 and [r["alpha"] for r in ctl["controls"][0]["rows"]] == [-2.0, 0.0, 2.0]
    assert ctl["evidence"]["verdict"] in ("distinguishable from the null", "not distinguishable from the null")
    assert ctl["evidence"]["estimate"]["n"] == 2
    seeded = ["persona", "steer", "--model", m, "--vector", vec, "--layer", "1", "--alphas=0,2", "--n-questions", "2"]
    seeded += ["--max-new-tokens", "4", "--steer-seeds", "0,1,2", "--controls", "1", "--out", str(tmp_path / "st3")]
    assert main(seeded) == 0
    st3 = json.loads((tmp_path / "st3" / "summary.json").read_text())["results"]
    assert st3["seeds"] == [0, 1, 2] and all(len(r["per_seed"]) == 3 and "trait_ci" in r for r in st3["rows"])
    assert len(st3["control"]["controls"][0]["rows"][0]["scores"]) == 2
    no_zero = ["persona", "steer", "--model", m, "--vector", vec, "--alphas=1,2", "--out", str(tmp_path / "st2")]
    assert main(no_zero) == 2
    assert (
        main(
            [
                "persona",
                "monitor",
                "--model",
                m,
                "--vector",
                vec,
                "--layer",
                "1",
                "--n-questions",
                "1",
                "--max-new-tokens",
                "4",
                "--out",
                str(tmp_path / "mo"),
            ]
        )
        == 0
    )
    mo = json.loads((tmp_path / "mo" / "summary.json").read_text())["results"]
    assert mo["n"] == 10 and len(mo["per_level"]) == 10
    data = tmp_path / "d.jsonl"
    data.write_text(
        "\n".join(
            json.dumps({"id": i, "dataset": "a" if i % 2 else "b", "prompt": f"P{i}?", "response": f"R{i}."})
            for i in range(4)
        )
    )
    assert (
        main(
            [
                "persona",
                "flag",
                "--model",
                m,
                "--vector",
                vec,
                "--layer",
                "1",
                "--dataset",
                str(data),
                "--max-new-tokens",
                "4",
                "--out",
                str(tmp_path / "fl"),
            ]
        )
        == 0
    )
    fl = json.loads((tmp_path / "fl" / "summary.json").read_text())["results"]
    assert set(fl["per_dataset"]) == {"a", "b"} and len(fl["per_sample"]) == 4
    # the report renders what these commands really wrote, with no renderer failure (strict: any failure raises)
    from featurescope.report import write_report

    info = write_report([tmp_path], tmp_path / "rep" / "report.html", strict=True)
    page = (tmp_path / "rep" / "report.html").read_text()
    assert info["n_runs"] == 6 and "renderer failed" not in page and "could not read key numbers" not in page


def test_persona_needs_a_vector(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["persona", "steer", "--out", str(tmp_path)])
    assert e.value.code == 2 and "--vector" in capsys.readouterr().err


def test_decompose_command_on_a_tiny_model(tiny_hf_folder, tmp_path, monkeypatch):
    """extract a vector, then decompose it into a synthetic SAE's features with cards (corpus stubbed small)."""
    from sae_lens import StandardSAE, StandardSAEConfig

    from featurescope import corpus

    m = str(tiny_hf_folder)
    ex = tmp_path / "ex"
    assert (
        main(
            [
                "persona",
                "extract",
                "--model",
                m,
                "--trait",
                "evil",
                "--n-questions",
                "2",
                "--n-pairs",
                "1",
                "--max-new-tokens",
                "4",
                "--pos-threshold",
                "0",
                "--neg-threshold",
                "101",
                "--out",
                str(ex),
            ]
        )
        == 0
    )
    cfg = StandardSAEConfig(d_in=32, d_sae=64)
    cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    cfg.metadata.model_name = m
    sae = StandardSAE(cfg)
    sae.save_model(tmp_path / "sae")
    monkeypatch.setattr(corpus, "ensure_installed", lambda *a, **k: None)
    monkeypatch.setattr(
        corpus, "documents", lambda split="train", *a, **k: [("d1", "Hello world. " * 40), ("d2", "Be kind! " * 40)]
    )
    out = tmp_path / "dec"
    assert (
        main(
            [
                "decompose",
                "--model",
                m,
                "--vector",
                str(ex / "evil.response_mean.safetensors"),
                "--sae",
                str(tmp_path / "sae"),
                "--k",
                "20",
                "--cards",
                "3",
                "--card-sequences",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    s = json.loads((out / "summary.json").read_text())
    assert set(s["results"]["decompositions"]) == {
        "cosine",
        "encode",
        "attribution",
        "attribution_sparse",
        "selectivity",
    }
    fe = s["results"]["decompositions"]["cosine"]["fraction_explained"]
    assert all(a <= b + 1e-9 for a, b in zip(fe, fe[1:]))
    # cards: the top 3 by attribution, then the sparse view's top 3 that are not already there
    cards = [c["feature"] for c in s["results"]["cards"]]
    top_att = [i for i, _ in s["results"]["decompositions"]["attribution"]["top"][:3]]
    top_sparse = [i for i, _ in s["results"]["decompositions"]["attribution_sparse"]["top"][:3]]
    top_sel = [i for i, _ in s["results"]["decompositions"]["selectivity"]["top"][:3]]
    want = top_att + [f for f in top_sparse if f not in top_att]
    assert cards == want + [f for f in top_sel if f not in want]
    assert {c["view"] for c in s["results"]["cards"]} <= {"attribution", "attribution_sparse", "selectivity"}
    assert (out / "cards.html").exists() and (out / "fraction_explained.png").exists()
    srcs = {c.get("source") for card in s["results"]["cards"] for c in card["contexts"]}
    assert srcs and srcs <= {"held-out corpus", "evil extraction responses (trait-expressing and not)"}, srcs
    from featurescope.report import write_report

    info = write_report([ex, out], tmp_path / "rep" / "report.html", strict=True)  # extract + decompose, as written
    page = (tmp_path / "rep" / "report.html").read_text()
    assert info["n_runs"] == 2 and "renderer failed" not in page and "could not read key numbers" not in page


def test_padded_rows_keep_bos_and_the_end_of_long_sequences():
    import torch

    from featurescope.decompose_run import padded_rows

    rows = padded_rows([torch.tensor([2, 5, 6]), torch.tensor([2, 10, 11, 12, 13, 14])], 4, bos=2, pad=0)
    assert rows.tolist() == [[2, 5, 6, 0], [2, 12, 13, 14]]


def test_written_extraction_then_decompose_on_a_tiny_model(tiny_hf_folder, tmp_path, monkeypatch):
    """persona extract --written reads paired written answers (no generation, no judge); decompose then uses those
    answers (which have no system prompt) as card contexts."""
    from sae_lens import StandardSAE, StandardSAEConfig

    from featurescope import corpus

    m = str(tiny_hf_folder)
    w = tmp_path / "w.jsonl"
    w.write_text(
        "\n".join(
            json.dumps({"id": f"w{i}", "question": f"Q{i}?", "pos": f"Hurt them {i}.", "neg": f"Help them {i}."})
            for i in range(3)
        )
    )
    ex = tmp_path / "ex"
    assert main(["persona", "extract", "--model", m, "--trait", "evil", "--written", str(w), "--out", str(ex)]) == 0
    s = json.loads((ex / "summary.json").read_text())
    assert s["results"]["counts"] == {"written_pairs": 3, "kept_pos": 3, "kept_neg": 3}
    assert s["inputs"]["judge"] is None and s["inputs"]["written"] == str(w)
    cfg = StandardSAEConfig(d_in=32, d_sae=64)
    cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    cfg.metadata.model_name = m
    import torch

    torch.manual_seed(0)
    StandardSAE(cfg).save_model(tmp_path / "sae")
    monkeypatch.setattr(corpus, "ensure_installed", lambda *a, **k: None)
    monkeypatch.setattr(corpus, "documents", lambda split="train", *a, **k: [("d1", "Hello world. " * 40)])
    out = tmp_path / "dec"
    assert (
        main(
            [
                "decompose",
                "--model",
                m,
                "--vector",
                str(ex / "evil.response_mean.safetensors"),
                "--sae",
                str(tmp_path / "sae"),
                "--k",
                "10",
                "--cards",
                "2",
                "--card-sequences",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    cards = json.loads((out / "summary.json").read_text())["results"]["cards"]
    assert any(c.get("source", "").startswith("evil extraction responses") for card in cards for c in card["contexts"])


def test_cli_defaults_come_from_the_library():
    """One home for defaults: the CLI reads them from the library instead of repeating (and drifting from) them."""
    import inspect

    from featurescope.cli import build_parser
    from featurescope.persona import ExtractionConfig
    from featurescope.sae_training import train_saes

    p = build_parser()
    a = p.parse_args(["sae", "train", "--out", "x"])
    lib = inspect.signature(train_saes).parameters
    assert a.training_tokens == lib["training_tokens"].default and a.batch_tokens == lib["batch_size_tokens"].default
    assert (a.d_sae, a.k, a.lr, a.seed) == tuple(lib[k].default for k in ("d_sae", "k", "lr", "seed"))
    assert a.dead_window == lib["dead_feature_window"].default
    assert a.store_batch == lib["store_batch_size_prompts"].default
    a = p.parse_args(["persona", "extract", "--out", "x"])
    assert a.max_new_tokens is None  # -> ExtractionConfig's own default
    assert ExtractionConfig().max_new_tokens == 64


def test_every_argument_has_help_and_every_parser_shows_defaults():
    """`featurescope <cmd> --help` documents every argument and shows its default (issue 20)."""
    import argparse

    from featurescope.cli.main import build_parser

    missing, plain = [], []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        if path != "featurescope" and not issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter):
            plain.append(path)
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    walk(child, f"{path} {name}")
            elif a.dest != "help" and not a.help:
                missing.append((path, a.option_strings or a.dest))

    walk(build_parser(), "featurescope")
    assert not missing, f"arguments without help: {missing}"
    assert not plain, f"parsers that do not show defaults: {plain}"
