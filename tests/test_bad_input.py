"""Bad input gets one clear line (exit 2) naming the problem, before any heavy work, with nothing half-written.

One test per hole found by the attack run on 7e43701 (issue 14)."""

from __future__ import annotations

import importlib
import json
import pickle

import pytest
import torch

from featurescope import persona as persona_mod
from featurescope.cli import main
from featurescope.errors import DataError, FeaturescopeError
from featurescope.persona import PersonaVector

generate_mod = importlib.import_module("featurescope.generate")


def _no_generation(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("generation ran before the input was checked")

    for name in ("featurescope.persona.extraction", "featurescope.persona.monitoring", "featurescope.persona.sweeps"):
        mod = importlib.import_module(name)
        if hasattr(mod, "generate"):
            monkeypatch.setattr(mod, "generate", boom)
    monkeypatch.setattr(generate_mod, "generate", boom)


def _vector(path, model_name, d=32, n_layers=2, trait="evil"):
    pv = PersonaVector(
        trait=trait,
        vectors=torch.randn(n_layers, d),
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(n_layers)],
        kind="response_mean",
        model=model_name,
        stage="post-trained",
        n_pos=3,
        n_neg=3,
    )
    return pv.save(path)


def _sae_folder(path, model_name, d_in=32, d_sae=64):
    from sae_lens import StandardSAE, StandardSAEConfig

    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae)
    cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    cfg.metadata.model_name = model_name
    StandardSAE(cfg).save_model(path)
    return path


# --- capture --prompts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("bad.txt", b"hello \xff\xfe world\n", "not UTF-8"),
        ("bad.jsonl", b'{"messages": [\xc3\x28]}\n', "not UTF-8"),
        ("bad.json", b'[{"messages": [}', "not valid JSON"),
        ("obj.json", b'{"messages": []}', "expected a JSON list"),
        ("bad2.jsonl", b'{"messages": []}\n{oops\n', ":2: not valid JSON"),
    ],
)
def test_capture_prompt_file_errors(name, content, message, tmp_path, capsys):
    f = tmp_path / name
    f.write_bytes(content)
    out = tmp_path / "run"
    # the model name is never reached: the prompt file is read first
    assert main(["capture", "--model", "offline:does-not-matter", "--prompts", str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# --- decompose: SAE folder, vector width ------------------------------------------------------------------------


def test_decompose_sae_folder_d_in_disagrees_with_weights(tiny_hf_folder, tmp_path, capsys):
    m = str(tiny_hf_folder)
    sae = _sae_folder(tmp_path / "sae", m)
    cfg = json.loads((sae / "cfg.json").read_text())
    cfg["d_in"] = 48
    (sae / "cfg.json").write_text(json.dumps(cfg))
    vec = _vector(tmp_path / "v.safetensors", m)
    out = tmp_path / "dec"
    assert main(["decompose", "--model", m, "--vector", str(vec), "--sae", str(sae), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cfg.json says d_in=48" in err and "W_enc" in err
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_decompose_sae_weights_truncated_or_garbage(damage, tiny_hf_folder, tmp_path, capsys):
    m = str(tiny_hf_folder)
    sae = _sae_folder(tmp_path / "sae", m)
    w = sae / "sae_weights.safetensors"
    data = w.read_bytes()
    w.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 100, "empty": b""}[damage])
    vec = _vector(tmp_path / "v.safetensors", m)
    out = tmp_path / "dec"
    assert main(["decompose", "--model", m, "--vector", str(vec), "--sae", str(sae), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "sae_weights.safetensors" in err and ("truncated" in err or "not a safetensors file" in err)
    assert not out.exists()


def test_decompose_vector_of_another_width(tiny_hf_folder, tmp_path, capsys):
    m = str(tiny_hf_folder)
    sae = _sae_folder(tmp_path / "sae", m)
    vec = _vector(tmp_path / "v.safetensors", "offline:smollm2-135m-instruct", d=576)
    out = tmp_path / "dec"
    assert main(["decompose", "--model", m, "--vector", str(vec), "--sae", str(sae), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "width 576" in err and "d_model 32" in err
    assert not out.exists()


def test_vector_of_another_model_needs_allow_other_model(tiny_chat, tmp_path):
    pv = PersonaVector.load(_vector(tmp_path / "v.safetensors", "some-other-checkpoint"))
    with pytest.raises(FeaturescopeError, match="allow_other_model"):
        pv.check_fits(tiny_chat)
    pv.check_fits(tiny_chat, allow_other_model=True)  # same width: allowed on purpose
    with pytest.raises(FeaturescopeError, match="no direction"):
        pv.check_fits(tiny_chat, "blocks.7.hook_resid_post", allow_other_model=True)


def test_garbage_vector_file(tmp_path, capsys):
    f = tmp_path / "v.safetensors"
    f.write_bytes(b"not a tensor file at all")
    with pytest.raises(FeaturescopeError, match="not a readable persona vector file"):
        PersonaVector.load(f)


# --- persona flag -----------------------------------------------------------------------------------------------


def _flag(model, vector, dataset, out):
    args = ["persona", "flag", "--model", model, "--vector", str(vector), "--dataset", str(dataset), "--layer", "1"]
    return main([*args, "--out", str(out)])


def test_flag_with_a_vector_of_another_width_fails_before_generating(tiny_hf_folder, tmp_path, capsys, monkeypatch):
    _no_generation(monkeypatch)
    m = str(tiny_hf_folder)
    ds = tmp_path / "d.jsonl"
    ds.write_text(json.dumps({"prompt": "Hi?", "response": "Hello."}) + "\n")
    vec = _vector(tmp_path / "v.safetensors", "offline:smollm2-135m-instruct", d=576)
    assert _flag(m, vec, ds, tmp_path / "f") == 2
    assert "width 576" in capsys.readouterr().err


def test_flag_row_without_response_fails_before_generating(tiny_hf_folder, tmp_path, capsys, monkeypatch):
    _no_generation(monkeypatch)
    m = str(tiny_hf_folder)
    ds = tmp_path / "d.jsonl"
    ds.write_text(json.dumps({"prompt": "Hi?", "response": "Hello."}) + "\n" + json.dumps({"prompt": "Bye?"}) + "\n")
    vec = _vector(tmp_path / "v.safetensors", m)
    assert _flag(m, vec, ds, tmp_path / "f") == 2
    err = capsys.readouterr().err
    assert "row 2 has no 'response'" in err


# --- role files -------------------------------------------------------------------------------------------------


def test_role_file_with_a_misspelt_top_level_key(tmp_path):
    from featurescope.axis import load_role_library

    f = tmp_path / "mine.yaml"
    f.write_text(
        "roles:\n  - name: lighthouse keeper\n    category: professions\n    prompts: [You keep a lighthouse.]\n"
        "questons:\n  - What do you see at night?\n"
    )
    with pytest.raises(DataError, match="questons.*Did you mean: questions"):
        load_role_library(f)
    g = tmp_path / "only.yaml"
    g.write_text("questons:\n  - What do you see at night?\n")
    with pytest.raises(DataError, match="Did you mean: questions"):
        load_role_library(g)


# --- the judge endpoint -----------------------------------------------------------------------------------------


def test_judge_url_without_model_is_refused(monkeypatch):
    from featurescope.judge import default_judge

    monkeypatch.setenv("FEATURESCOPE_JUDGE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("FEATURESCOPE_JUDGE_MODEL", raising=False)
    with pytest.raises(FeaturescopeError, match="FEATURESCOPE_JUDGE_MODEL is not"):
        default_judge()


def test_dead_judge_endpoint_fails_before_generating(tiny_hf_folder, tmp_path, capsys, monkeypatch):
    _no_generation(monkeypatch)
    monkeypatch.setenv("FEATURESCOPE_JUDGE_URL", "http://127.0.0.1:9/v1")  # the discard port: connection refused
    monkeypatch.setenv("FEATURESCOPE_JUDGE_MODEL", "judge")
    assert main(["persona", "extract", "--model", str(tiny_hf_folder), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "127.0.0.1:9" in err and "Traceback" not in err


def test_judge_failure_keeps_generated_answers(tiny_chat, tmp_path):
    class DyingJudge:
        name = "dying"

        def score_many(self, *a, **k):
            raise FeaturescopeError("judge endpoint x cannot be reached (refused)")

    cfg = persona_mod.ExtractionConfig(n_questions=2, n_pairs=1, max_new_tokens=3)
    path = tmp_path / "answers.jsonl"
    with pytest.raises(FeaturescopeError, match="4 generated answers are kept in"):
        persona_mod.extract(tiny_chat, "evil", DyingJudge(), config=cfg, progress=False, answers_path=path)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(rows) == 4 and {r["side"] for r in rows} == {"pos", "neg"} and all("response" in r for r in rows)


# --- corpus -----------------------------------------------------------------------------------------------------


def test_corpus_never_installs_system_packages(monkeypatch):
    import subprocess

    from featurescope import corpus

    monkeypatch.setitem(
        corpus.SOURCES, "fortunes", corpus.Source("fortunes", "fortunes", "/nonexistent/fortunes", "BSD")
    )
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("corpus ran a subprocess"))
    with pytest.raises(FeaturescopeError, match="apt-get install fortunes"):
        corpus.ensure_installed(["fortunes"])


def test_corpus_cache_refuses_pickled_objects(tmp_path, monkeypatch, char_tok):
    from featurescope import corpus

    path = corpus.sequence_cache_path(char_tok, "heldout", 16, 0)
    monkeypatch.setattr(corpus, "sequence_cache_path", lambda *a, **k: tmp_path / "c.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("code ran while loading the corpus cache",))

    (tmp_path / "c.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(FeaturescopeError, match="unreadable or not a plain tensor"):
        corpus.sequences(char_tok, "heldout", context_size=16)
    torch.save({"rows": torch.zeros(2, 3)}, tmp_path / "c.pt")
    with pytest.raises(FeaturescopeError, match="2-D token tensor"):
        corpus.sequences(char_tok, "heldout", context_size=16)
    torch.save(torch.arange(6, dtype=torch.int32).reshape(2, 3), tmp_path / "c.pt")
    assert corpus.sequences(char_tok, "heldout", context_size=16).shape == (2, 3)
    assert path.name.startswith("heldout-16-")


# --- degenerate statistics --------------------------------------------------------------------------------------


def test_cohens_d_is_undefined_with_one_answer_per_side():
    from featurescope.measures import cohens_d

    assert cohens_d(torch.tensor([1.0]), torch.tensor([0.0])) != cohens_d(
        torch.tensor([1.0]), torch.tensor([0.0])
    )  # nan
    assert cohens_d(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])) != 0.0  # no spread: nan, never 1e11
    d = cohens_d(torch.tensor([1.0, 1.0, 1.0]) + 1e-9, torch.tensor([1.0, 1.0, 1.0]))
    assert d != d
    # a planted effect: two unit-variance samples 2 apart have d = 2
    a, b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([-1.0, 0.0, 1.0])
    assert cohens_d(a, b) == pytest.approx(2.0)


def test_separation_with_one_answer_per_side_prints_no_huge_number():
    from featurescope.persona import separation

    s = separation(torch.randn(1, 2, 8), torch.randn(1, 2, 8), torch.randn(2, 8))
    assert all(d != d for d in s["cohens_d"])


# --- interrupts and orphans -------------------------------------------------------------------------------------


def test_ctrl_c_prints_one_line_on_how_to_resume(tiny_hf_folder, tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    # the forward pass is imported by name into the modules that run it (capture in memory, store on disk)
    for mod in ("featurescope.capture", "featurescope.store"):
        monkeypatch.setattr(importlib.import_module(mod), "capture_prompts", interrupted)
    p = tmp_path / "p.txt"
    p.write_text("hello\nworld\n")
    rc = main(["capture", "--model", str(tiny_hf_folder), "--prompts", str(p), "--out", str(tmp_path / "r"), "--quiet"])
    assert rc == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "run the same command again to resume" in err and "Traceback" not in err


def test_killed_run_leaves_no_orphan_shard(tiny_chat, tmp_path):
    import featurescope as fs

    st = fs.ActivationStore(tmp_path / "acts", shard_size=2)
    prompts = [f"Question {i}?" for i in range(4)]
    st.capture(
        tiny_chat,
        [fs.format_conversation(tiny_chat, p) for p in prompts],
        [tiny_chat.resid_hook(1)],
        reduction="last_prompt",
        progress=False,
        stop_after_shards=1,
    )
    orphan = tmp_path / "acts" / ".shard-00001.safetensors.k1ll3d"
    orphan.write_bytes(b"half a shard")
    acts = fs.capture(tiny_chat, prompts, [tiny_chat.resid_hook(1)], reduction="last_prompt", store=st, progress=False)
    assert acts[tiny_chat.resid_hook(1)].shape[0] == 4 and st.complete
    assert not orphan.exists()
