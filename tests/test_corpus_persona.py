"""The ``persona`` corpus source (issue 18, item 1): persona-rich text shipped in the package (character passages,
written trait answers, the offline models' role-play answers), its split and cache key, and the ``--sources`` flag of
``crosscoder train`` / ``sae train`` passed through to the corpus, the summaries and the crosscoder's resume check."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from featurescope import corpus
from featurescope.cli.main import build_parser, main
from featurescope.errors import FeaturescopeError

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"character", "trait", "role"}


def _kind(doc_id: str) -> str:
    return doc_id.split("/")[1]


def test_persona_documents_cover_every_kind_with_unique_ids_in_a_fixed_order():
    docs = corpus.documents("all", ["persona"])
    assert docs == corpus.documents("all", ["persona"])  # deterministic order
    ids = [i for i, _ in docs]
    assert len(ids) == len(set(ids)) and all(i.startswith("persona/") for i in ids)
    counts = Counter(_kind(i) for i in ids)
    assert set(counts) == KINDS, counts
    # both sides of every character passage and every written trait pair
    n_char = sum(1 for line in corpus.PERSONA_CHARACTERS.read_text().splitlines() if line.strip())
    n_trait = sum(
        1 for p in corpus.PERSONA_TRAITS.glob("*.written.jsonl") for line in p.read_text().splitlines() if line.strip()
    )
    assert counts["character"] == 2 * n_char and counts["trait"] == 2 * n_trait and counts["role"] >= 100
    assert all(t.strip() for _, t in docs)
    by_id = dict(docs)
    assert (
        by_id["persona/trait/evil-w-001@pos"].startswith("User: ")
        and "\n\nAssistant: " in by_id["persona/trait/evil-w-001@pos"]
    )
    role = next(t for i, t in docs if _kind(i) == "role" and not t.startswith("User: "))
    assert "\n\nUser: " in role and "\n\nAssistant: " in role  # the role instruction comes first


def test_both_splits_are_non_empty_disjoint_and_keep_pairs_together():
    train, held = corpus.documents("train", ["persona"]), corpus.documents("heldout", ["persona"])
    assert train and held
    assert {_kind(i) for i, _ in train} == KINDS
    tids, hids = {i for i, _ in train}, {i for i, _ in held}
    assert not tids & hids and tids | hids == {i for i, _ in corpus.documents("all", ["persona"])}
    for i in hids:  # the other version of a held-out pair is held out too
        if "@" in i:
            base, side = i.split("@")
            other = {"questionable": "benign", "benign": "questionable", "pos": "neg", "neg": "pos"}[side]
            assert f"{base}@{other}" in hids


def test_the_persona_pairs_evaluation_set_never_enters_the_corpus():
    texts = corpus.documents("all", ["persona"])
    blob = "\n".join(t for _, t in texts)
    pairs = [json.loads(x) for x in (corpus.DATA / "persona_pairs" / "pairs.jsonl").read_text().splitlines() if x]
    assert pairs
    for row in pairs:
        for field in ("user", "assistant", "character"):
            assert row[field].strip() not in blob, (row["id"], field)
        assert not any(row["id"] in i for i, _ in texts)


def test_role_answers_are_small_attributed_and_up_to_date():
    path = corpus.PERSONA_ROLES
    assert path.stat().st_size < 1_000_000
    rows = [json.loads(x) for x in path.read_text().splitlines() if x]
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["model"] for r in rows} == {"offline:gemma-3-270m-sft", "offline:smollm2-135m-instruct"}
    assert len({r["role"] for r in rows}) >= 30 and all(r["response"].strip() and r["runs"] for r in rows)
    assert (path.parent / "README.md").exists()
    builder = ROOT / "scripts" / "build_persona_corpus.py"
    if not (builder.exists() and (ROOT / "docs").exists()):  # an installed wheel has neither
        pytest.skip("the builder and the committed runs are not here")
    spec = importlib.util.spec_from_file_location("build_persona_corpus", builder)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built, _ = mod.build()
    assert mod.render(built) == path.read_text(), "stale: rerun scripts/build_persona_corpus.py"
    assert mod.degenerate('"Little Puppy"\n"Little Puppy"\n"Little Puppy"') and mod.degenerate("Alec.")
    assert mod.degenerate("I'm a coach, and I'm a coach. I'm a coach, and I'm a coach. I'm a coach,")
    assert mod.degenerate("Aye, I am Captain Blackbeak, a scurvy dog of the southern seas.") is None


def test_the_cache_key_follows_the_sources_and_the_persona_files(char_tok, tmp_path, monkeypatch):
    key = lambda sources: corpus.sequence_cache_path(char_tok, "train", 128, 42, sources)  # noqa: E731
    paths = {
        key(corpus.DEFAULT_SOURCES),
        key(corpus.PERSONA_SOURCES),
        key(("persona",)),
        key(("dialogues",)),
        key(("persona", "dialogues")),
        key(("dialogues", "persona")),
    }
    assert len(paths) == 6
    assert key(corpus.DEFAULT_SOURCES) == corpus.sequence_cache_path(char_tok, "train", 128, 42)
    before = key(corpus.PERSONA_SOURCES)
    changed = tmp_path / "role_answers.jsonl"
    changed.write_text(corpus.PERSONA_ROLES.read_text() + "\n")
    monkeypatch.setattr(corpus, "PERSONA_ROLES", changed)  # a release that changes the shipped file: a new cache
    assert key(corpus.PERSONA_SOURCES) != before
    assert key(corpus.DEFAULT_SOURCES) == corpus.sequence_cache_path(char_tok, "train", 128, 42)


def test_persona_sequences_build_and_reload_their_cache(char_tok, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURESCOPE_CACHE", str(tmp_path))
    rows = corpus.sequences(char_tok, "heldout", context_size=64, seed=1, sources=["persona"])
    assert rows.ndim == 2 and rows.shape[1] == 64 and len(rows) > 10
    assert (rows[:, 0] == char_tok.bos_token_id).all()
    assert corpus.sequence_cache_path(char_tok, "heldout", 64, 1, ["persona"]).exists()
    assert torch.equal(corpus.sequences(char_tok, "heldout", context_size=64, seed=1, sources=["persona"]), rows)


def test_describe_counts_the_persona_source_per_kind():
    tok = lambda text, add_special_tokens=False: {"input_ids": text.split()}  # noqa: E731 - a whitespace tokenizer
    d = corpus.describe(tok, ["persona"])["persona"]
    assert set(d["kinds"]) == KINDS and d["documents"] == sum(k["documents"] for k in d["kinds"].values())
    assert sum(d["tokens"].values()) == sum(k["tokens"] for k in d["kinds"].values()) > 10_000
    assert d["package"] is None and "Apache-2.0" in d["licence"]
    assert [s["source"] for s in corpus.describe_short(corpus.PERSONA_SOURCES)] == list(corpus.PERSONA_SOURCES)


def test_presets_and_parse_sources():
    assert corpus.DEFAULT_SOURCES == ("python-docs", "fortunes", "dialogues")  # the shipped SAEs' cfg depends on it
    assert corpus.PERSONA_SOURCES == (*corpus.DEFAULT_SOURCES, "persona")
    assert set(corpus.PERSONA_SOURCES) <= set(corpus.SOURCES)
    assert corpus.parse_sources(" persona , dialogues ") == ("persona", "dialogues")
    for bad, msg in (("persona,nope", "unknown corpus source"), ("", "no corpus source"), ("persona,persona", "once")):
        with pytest.raises(FeaturescopeError, match=msg):
            corpus.parse_sources(bad)


@pytest.mark.parametrize("action", [["crosscoder", "train"], ["sae", "train"]])
def test_the_sources_flag_is_checked_at_parse_time(action, capsys):
    parser = build_parser()
    a = parser.parse_args([*action, "--out", "x"])
    assert a.sources == corpus.DEFAULT_SOURCES
    a = parser.parse_args([*action, "--sources", "python-docs,fortunes,dialogues,persona", "--out", "x"])
    assert a.sources == corpus.PERSONA_SOURCES
    with pytest.raises(SystemExit) as e:
        parser.parse_args([*action, "--sources", "python-docs,villains", "--out", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--sources" in err and "villains" in err
    assert "known: python-docs, fortunes, dialogues, persona" in err


class _Recorder:
    def __init__(self, ret: Any = None) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.ret = ret

    def __call__(self, *args: Any, **kw: Any) -> Any:
        self.calls.append((args, kw))
        return self.ret


def test_the_cli_passes_the_sources_to_the_library(monkeypatch, tmp_path):
    import featurescope.cli.crosscoder as cc_cli
    import featurescope.cli.sae as sae_cli

    monkeypatch.setattr(sae_cli, "load_model", lambda name, adapter=None: object())
    monkeypatch.setattr(cc_cli, "load_model", lambda name: object())
    sae, cc = _Recorder(), _Recorder({"training": {"path": "p"}, "eval": {}})
    monkeypatch.setattr(sae_cli, "sae_train", sae)
    monkeypatch.setattr(cc_cli, "crosscoder_train", cc)
    assert main(["sae", "train", "--sources", "dialogues,persona", "--out", str(tmp_path)]) == 0
    kw = sae.calls[-1][1]
    assert kw["sources"] == ("dialogues", "persona") and "--sources dialogues,persona " in kw["retrain"]
    assert main(["crosscoder", "train", "--sources", "persona", "--out", str(tmp_path)]) == 0
    kw = cc.calls[-1][1]
    assert kw["sources"] == ("persona",) and "--sources persona " in kw["retrain"]


def test_crosscoder_train_reads_and_records_the_chosen_sources(tiny_base, tiny_chat, tmp_path, monkeypatch):
    import featurescope.crosscoder as fc

    seen: list[tuple[str, tuple[str, ...]]] = []

    def sequences(tok, split, context_size, max_sequences, seed, sources):
        seen.append((split, tuple(sources)))
        return torch.full((4, 8), tok.bos_token_id)

    monkeypatch.setattr(fc.corpus, "sequences", sequences)
    train = _Recorder({"path": tmp_path / "cc"})
    (tmp_path / "cc").mkdir()
    monkeypatch.setattr(fc, "train_crosscoder", train)
    monkeypatch.setattr(fc, "pair_activations", lambda *a, **k: iter([torch.zeros(2, 64)]))
    monkeypatch.setattr(fc, "_measure", lambda path, pairs: {"eval": {}, "report": {}})
    fc.crosscoder_train(tiny_base, tiny_chat, tmp_path / "t", layer=1, sources=corpus.PERSONA_SOURCES)
    assert seen == [("train", corpus.PERSONA_SOURCES), ("heldout", corpus.PERSONA_SOURCES)]
    assert train.calls[-1][1]["sources"] == corpus.PERSONA_SOURCES
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["inputs"]["sources"] == list(corpus.PERSONA_SOURCES)
    assert [c["source"] for c in summary["results"]["corpus"]] == list(corpus.PERSONA_SOURCES)


def test_a_crosscoder_checkpoint_refuses_other_sources(tmp_path):
    from featurescope.crosscoder import RUN_FILE, _check_resume

    ckpt = tmp_path / "1024"
    ckpt.mkdir()
    run = {"d_sae": 64, "sources": list(corpus.DEFAULT_SOURCES)}
    (ckpt / RUN_FILE).write_text(json.dumps(run))
    _check_resume(ckpt, run)
    with pytest.raises(FeaturescopeError, match=r'sources: checkpoint \["python-docs", "fortunes", "dialogues"\], '):
        _check_resume(ckpt, {**run, "sources": list(corpus.PERSONA_SOURCES)})
    # a checkpoint written before sources were recorded was trained on the default sources
    (ckpt / RUN_FILE).write_text(json.dumps({"d_sae": 64}))
    _check_resume(ckpt, run)
    with pytest.raises(FeaturescopeError, match=r'this run \["python-docs", "fortunes", "dialogues", "persona"\]'):
        _check_resume(ckpt, {**run, "sources": list(corpus.PERSONA_SOURCES)})


def test_sae_train_reads_and_records_the_chosen_sources(tiny_base, tmp_path, monkeypatch):
    import featurescope.sae_run as sr

    seen: list[tuple[str, tuple[str, ...]]] = []

    def sequences(tok, split, context_size, max_sequences, seed, sources):
        seen.append((split, tuple(sources)))
        return torch.full((4, 8), tok.bos_token_id)

    monkeypatch.setattr(sr.corpus, "sequences", sequences)
    monkeypatch.setattr(sr, "train_saes", lambda *a, **k: {})
    sr.sae_train(tiny_base, tmp_path, layers=[1], training_tokens=64, sources=["persona"], progress=False)
    assert seen == [("heldout", ("persona",)), ("train", ("persona",))]
    assert json.loads((tmp_path / "summary.json").read_text())["inputs"]["sources"] == ["persona"]
