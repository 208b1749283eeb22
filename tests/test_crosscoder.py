"""The BatchTopK crosscoder trained through sae-lens (issue 18, item 3): the registered architecture, paired
activations, training / checkpoints / resuming on tiny models, and a planted post-only latent."""

from __future__ import annotations

import argparse
import html
import json
import shutil
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from featurescope.errors import FeaturescopeError
from tests.conftest import SPECIALS, make_tiny_tl

HOOK = "blocks.1.hook_resid_post"


def _rows(tok, n_rows: int, ctx: int = 33, seed: int = 0) -> torch.Tensor:
    """Random printable-character rows starting with BOS (the tiny models' vocabulary)."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(len(SPECIALS), len(SPECIALS) + 90, (n_rows, ctx), generator=g)
    rows[:, 0] = tok.bos_token_id
    return rows


def _new_sae(d_model: int, d_sae: int, k: int):
    from featurescope.crosscoder_sae import BatchTopKCrosscoderTrainingSAE, BatchTopKCrosscoderTrainingSAEConfig

    cfg = BatchTopKCrosscoderTrainingSAEConfig(d_in=2 * d_model, d_sae=d_sae, k=k, decoder_init_norm=1.0)
    return BatchTopKCrosscoderTrainingSAE(cfg)


def test_architecture_round_trips_through_sae_lens_save_and_load(tmp_path):
    from sae_lens import SAE
    from sae_lens.saes.sae import TrainingSAE

    from featurescope.crosscoder_sae import BatchTopKCrosscoderTrainingSAE, JumpReLUCrosscoder
    from featurescope.stages import load_crosscoder

    torch.manual_seed(0)
    d, n, thr = 8, 24, 0.2
    sae = _new_sae(d, n, 4)
    with torch.no_grad():  # uneven per-model halves and scales, so a wrong fold would show
        sae.W_dec.mul_(torch.rand(n, 1) + 0.5)
        sae.W_dec[:, :d] *= 2
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_()
        sae.activation_scales.copy_(torch.tensor([0.5, 3.0]))
        sae.topk_threshold.fill_(thr)
    sae.save_model(tmp_path / "ckpt")  # the training checkpoint format
    again = TrainingSAE.load_from_disk(tmp_path / "ckpt")
    assert type(again) is BatchTopKCrosscoderTrainingSAE
    for name, v in sae.state_dict().items():  # (sae-lens loads the float64 top-k threshold as float32)
        torch.testing.assert_close(again.state_dict()[name].to(v.dtype), v, rtol=1e-6, atol=0)

    x = torch.randn(64, 2 * d) * 2  # normalised space (what the crosscoder trains on)
    with torch.no_grad():
        _, pre = sae.encode_with_hidden_pre(x)
        f = pre * (pre > thr)  # the learned threshold in place of the batch top-k, as sae-lens saves BatchTopK
        want = sae.decode(f)
    s = sae.activation_scales.repeat_interleave(d)
    sae.save_inference_model(tmp_path / "final")
    assert json.loads((tmp_path / "final" / "cfg.json").read_text())["architecture"] == "jumprelu_crosscoder"
    inf = SAE.load_from_disk(tmp_path / "final")
    assert isinstance(inf, JumpReLUCrosscoder) and inf.d_model == d
    with torch.no_grad():  # the saved crosscoder reads and writes raw activations (scales folded in)
        torch.testing.assert_close(inf.encode(x / s), f, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(inf(x / s), want / s, rtol=1e-4, atol=1e-4)
    cc = load_crosscoder(tmp_path / "final")  # featurescope's analysis reads the same folder
    xm = (x / s).unflatten(-1, (2, d))
    torch.testing.assert_close(cc.encode(xm), f, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cc.decode(cc.encode(xm)).transpose(0, 1).flatten(1), want / s, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cc.W_dec[1], inf.decoder_per_model()[1].detach())


def test_batch_topk_and_aux_loss_rank_by_the_sum_of_per_model_decoder_norms():
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig

    sae = _new_sae(2, 2, 1)
    with torch.no_grad():  # equal pre-activations; the decoder rows alone decide
        sae.W_enc.zero_()
        sae.b_enc.fill_(1.0)
        sae.b_dec.zero_()
        # latent 0: base norm 1, post norm 1 -> concatenated norm 1.41, sum 2
        # latent 1: base norm 1.6, post 0 -> concatenated norm 1.6, sum 1.6
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.6, 0.0, 0.0, 0.0]]))
    x = torch.zeros(1, 4)
    f, pre = sae.encode_with_hidden_pre(x)
    assert f[0, 0] > 0 and f[0, 1] == 0
    # sae-lens' BatchTopK SAE on the concatenation, same weights: the concatenated-norm rule picks latent 1
    plain = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=4, d_sae=2, k=1))
    plain.load_state_dict({k: v for k, v in sae.state_dict().items() if k != "activation_scales"})
    fp, _ = plain.encode_with_hidden_pre(x)
    assert fp[0, 1] > 0 and fp[0, 0] == 0
    # the auxiliary loss ranks dead latents the same way (k_aux = d_model // 2 = 1): latent 0 is chosen and
    # reconstructs this residual exactly; latent 1 would leave an error of 1.36
    target = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    aux = sae.calculate_topk_aux_loss(target, torch.zeros(1, 4), pre, torch.ones(2, dtype=torch.bool))
    assert float(aux.detach()) < 1e-6


def test_pair_activations_drop_bos_padding_and_outlier_tokens(tiny_base, tiny_chat, monkeypatch):
    import featurescope.crosscoder_data as cd
    from featurescope.crosscoder import pair_activations

    hook = "blocks.0.hook_resid_post"
    rows = _rows(tiny_base.tokenizer, 4, ctx=17)
    rows[1, -3:] = tiny_base.tokenizer.pad_token_id
    counts: dict[str, int] = {}
    pairs = torch.cat(list(pair_activations(tiny_base, tiny_chat, rows, hook, outlier_k=None, counts=counts)))
    assert pairs.shape == (4 * 16 - 3, 64) and pairs.dtype == torch.float32
    assert counts == {"tokens": 68, "special": 7, "outliers": 0, "kept": 61}
    for model, half in ((tiny_base, slice(0, 32)), (tiny_chat, slice(32, 64))):  # each half is its model's own
        _, cache = model.tl.run_with_cache(rows[:1], names_filter=[hook])
        torch.testing.assert_close(pairs[:16, half], cache[hook][0, 1:])
    # a token with an outlier norm in ONE model is dropped from the pair
    real = cd._hook_acts

    def spiky(model, r, h, stop):
        a = real(model, r, h, stop)
        if model is tiny_chat:
            a[0, 5] *= 100
        return a

    monkeypatch.setattr(cd, "_hook_acts", spiky)
    counts = {}
    kept = torch.cat(list(pair_activations(tiny_base, tiny_chat, rows, hook, counts=counts)))
    assert counts["outliers"] == 1 and len(kept) == len(pairs) - 1
    torch.testing.assert_close(kept[:4], pairs[:4])  # positions 1-4 of row 0, then position 5 is gone
    torch.testing.assert_close(kept[4:15], pairs[5:16])


def test_models_of_different_shapes_or_a_bad_hook_are_clear_errors(tiny_base, char_tok_plain):
    import featurescope as fs
    from featurescope.crosscoder import pair_activations

    other = fs.from_hooked_transformer(
        make_tiny_tl(char_tok_plain, n_layers=2), name="tiny-2", stage="post-trained", tokenizer=char_tok_plain
    )
    rows = _rows(tiny_base.tokenizer, 2)
    with pytest.raises(FeaturescopeError, match=r"tiny-base has d_model=32, n_layers=3.*tiny-2 has .*n_layers=2"):
        pair_activations(tiny_base, other, rows, "blocks.0.hook_resid_post")
    with pytest.raises(FeaturescopeError, match="no hook"):
        pair_activations(tiny_base, tiny_base, rows, "blocks.0.hook_resid_sideways")


def test_training_on_two_tiny_models_learns_checkpoints_and_resumes(tiny_base, tiny_chat, tmp_path):
    from featurescope.crosscoder import evaluate_crosscoder, pair_activations, train_crosscoder

    rows = _rows(tiny_base.tokenizer, 48)
    kw: dict[str, Any] = dict(
        tokens=rows[:40], d_sae=64, k=8, training_tokens=40 * 128, batch_size_tokens=128, lr=3e-3, n_checkpoints=1
    )
    info = train_crosscoder(tiny_base, tiny_chat, HOOK, tmp_path, **kw)
    assert info["resumed_from"] is None and info["steps_this_call"] == 40
    assert info["probe_mse_after"] < 0.6 * info["probe_mse_before"], info
    assert info["counts"]["special"] > 0 and info["counts"]["kept"] >= 40 * 128
    ckpts = [p for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    assert (
        len(ckpts) == 1 and (ckpts[0] / "trainer_state.pt").exists() and (ckpts[0] / "featurescope_run.json").exists()
    )
    cfg = json.loads((info["path"] / "cfg.json").read_text())
    assert cfg["metadata"]["hook_name"] == HOOK and len(cfg["metadata"]["activation_scales"]) == 2

    held = torch.cat(list(pair_activations(tiny_base, tiny_chat, rows[40:], HOOK)))
    ev = evaluate_crosscoder(info["path"], held)
    assert ev["fve_base"] > 0.3 and ev["fve_post"] > 0.3, ev
    assert 1 <= ev["l0"] <= 32 and 0 <= ev["dead_fraction"] < 1 and ev["n_tokens"] == len(held)

    # picks the checkpoint up and runs only the rest, with the checkpoint's scales (stats_rows is no run setting:
    # the 4-row estimate differs, and is not used)
    again = train_crosscoder(tiny_base, tiny_chat, HOOK, tmp_path, **kw, stats_rows=4)
    assert again["resumed_from"] == ckpts[0] and 0 < again["steps_this_call"] < 40
    assert again["activation_scales"] == info["activation_scales"]
    kw32: dict[str, Any] = {**kw, "d_sae": 32}
    with pytest.raises(FeaturescopeError, match=r"d_sae: checkpoint 64, this run 32"):
        train_crosscoder(tiny_base, tiny_chat, HOOK, tmp_path, **kw32)
    fresh = train_crosscoder(tiny_base, tiny_chat, HOOK, tmp_path, **kw32, resume=False)
    assert fresh["resumed_from"] is None


def test_a_planted_post_only_direction_becomes_a_post_only_latent(tmp_path):
    from featurescope.crosscoder import analyse_crosscoder, fit_crosscoder, tensor_source
    from featurescope.stages import load_crosscoder

    g = torch.Generator().manual_seed(0)
    d, n, n_shared = 16, 8192, 12
    shared = F.normalize(torch.randn(n_shared, d, generator=g), dim=-1)
    planted = F.normalize(torch.randn(d, generator=g), dim=0)
    coef = (torch.rand(n, n_shared, generator=g) < 0.1) * (1 + torch.rand(n, n_shared, generator=g))
    p_coef = (torch.rand(n, generator=g) < 0.15) * (1 + torch.rand(n, generator=g))
    base = coef @ shared
    post = 5 * (coef @ shared + p_coef[:, None] * planted)  # another scale: the per-model normalisation absorbs it
    pairs = torch.cat([base, post], -1)
    torch.manual_seed(0)
    info = fit_crosscoder(
        tensor_source(pairs, seed=0),
        pairs[:1024],
        tmp_path,
        run={"what": "planted post-only direction"},
        d_sae=32,
        k=3,
        training_tokens=256 * 600,
        batch_size_tokens=256,
        lr=3e-3,
        n_checkpoints=0,
    )
    rep, ten = analyse_crosscoder(info["path"], pairs[:2048])
    cc = load_crosscoder(info["path"])
    post_only = (ten["relative_norm"] > 0.9).nonzero().flatten()
    assert rep["counts"]["post_only"] >= 1, rep["counts"]
    cos = F.cosine_similarity(cc.W_dec[1][post_only], planted[None], dim=-1)
    assert float(cos.max()) > 0.9, cos
    # Latent Scaling: the base model does not need the planted latent (nu_error ~ 0: no Complete Shrinkage), and no
    # other latent carries its direction in either model's reconstruction (both beta_recon ~ 0.02 x beta_error_post,
    # so nu_recon ~ 1 is a ratio of noise and not used): it is truly post-only, not a sparsity artefact
    assert float(ten["nu_error"][: len(post_only)].abs().min()) < 0.1, ten["nu_error"]
    found = int(post_only[cos.argmax()])
    assert found in rep["true_post_only_latents"] and found not in rep["flagged_post_only_latents"], rep
    (why,) = [x for x in rep["post_only_latent_scaling"] if x["latent"] == found]
    assert why["verdict"] == "truly post-only" and not why["nu_recon_used"], why
    assert "no reconstruction component" in why["reason"] and abs(why["beta_recon_post"]) < 0.1, why
    assert rep["post_only_nu_recon_undefined"] >= 1 and rep["space"].startswith("training space"), rep
    # read in the training space, the 5x larger post activations leave shared latents at r ~ 0.5 and nu ~ 1 (in raw
    # units they would sit at r ~ 5/6 and nu ~ 1/5)
    shared = rep["counts"]["shared"]
    assert shared >= 10 and 0.7 < rep["nu_error_median"]["shared"] < 1.3, rep
    raw, _ = analyse_crosscoder(info["path"], pairs[:2048], scales=torch.ones(2))
    assert raw["nu_error_median"]["shared"] < 0.3, raw


def test_commands_write_summaries_and_the_cli_parses(tiny_base, tiny_chat, tmp_path, monkeypatch):
    import featurescope.crosscoder as fc
    from featurescope.cli import crosscoder as cli

    monkeypatch.setattr(
        fc.corpus, "sequences", lambda tok, split, context_size, max_sequences, seed, sources: _rows(tok, 24, seed=seed)
    )
    monkeypatch.setattr(fc.corpus, "describe_short", lambda sources: [{"name": "random rows"}])
    res = fc.crosscoder_train(
        tiny_base, tiny_chat, tmp_path / "t", layer=1, d_sae=32, k=4, training_tokens=1024, batch_size_tokens=128
    )
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["command"] == "crosscoder train" and summary["inputs"]["hook"] == HOOK
    assert set(summary["results"]["eval"]) >= {"fve_base", "fve_post", "l0", "dead_fraction"}
    assert "counts" in summary["results"]["report"] and (tmp_path / "t" / "crosscoder" / "eval.json").exists()
    assert "cards" not in summary["results"] and not (tmp_path / "t" / "cards.html").exists()  # cards=0: none
    ev = fc.crosscoder_eval(tiny_base, tiny_chat, res["training"]["path"], tmp_path / "e")  # hook from cfg.json
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["inputs"]["hook"] == HOOK
    assert ev["eval"]["fve_base"] == pytest.approx(res["eval"]["fve_base"])

    # the seed control reads the run folder the command wrote (a crosscoder against itself: all reused, same class)
    from featurescope.crosscoder_compare import compare_runs

    cmp = compare_runs(tmp_path / "t", tmp_path / "e", tmp_path / "c")  # a train folder and an eval folder
    assert cmp["reuse"]["a_to_b"] == 1.0 and cmp["class_agreement"]["agreement"] == 1.0 and cmp["converged"]
    got = cmp["runs"]["a"]["class_fractions"]
    assert got == {c: n / 32 for c, n in res["report"]["counts"].items()} | {"truly_chat_only": got["truly_chat_only"]}

    # cards: this short run learns shared latents only; make the two most active ones post-only and base-only
    planted = tmp_path / "planted"
    shutil.copytree(res["training"]["path"], planted)
    held = fc.held_out_pairs(tiny_base, tiny_chat, _rows(tiny_base.tokenizer, 24, seed=1), HOOK)
    busy = (fc.load_crosscoder(planted).encode(held.pairs.unflatten(-1, (2, 32))) > 0).sum(0).argsort(descending=True)
    post_only, base_only = int(busy[0]), int(busy[1])
    w = load_file(str(planted / "sae_weights.safetensors"))
    w["W_dec"][post_only, :32] = 0.0
    w["W_dec"][base_only, 32:] = 0.0
    save_file(w, str(planted / "sae_weights.safetensors"))
    ev = fc.crosscoder_eval(tiny_base, tiny_chat, planted, tmp_path / "p", cards=2)
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["figures"] == ["cards.html"] and summary["inputs"]["cards"] == 2
    assert summary["inputs"]["sources"] == list(fc.corpus.DEFAULT_SOURCES)
    assert ev["report"]["counts"]["post_only"] == 1 and ev["report"]["counts"]["base_only"] == 1
    cards = summary["results"]["cards"]
    assert [(k.split(" ")[0], [c["latent"] for c in v]) for k, v in cards.items()] == [
        ("post-only", [post_only]),
        ("base-only", [base_only]),
    ]
    page = (tmp_path / "p" / "cards.html").read_text()
    for c in (*cards[next(iter(cards))], *cards[list(cards)[1]]):
        assert f"feature {c['latent']} &middot; " in page and c["top_context"] and c["density"] > 0
        tail = html.escape(c["top_context"][-3:]).replace("\n", "&#8629;")  # the context's end, as the card shows it
        assert tail in page.replace("</span><span style=''>", "")

    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    a = p.parse_args(["crosscoder", "train", "--out", "x"])
    assert (a.d_sae, a.k, a.training_tokens, a.seed) == tuple(
        fc.TRAIN_DEFAULTS[k] for k in ("d_sae", "k", "training_tokens", "seed")
    )
    assert a.base == "offline:gemma-3-270m" and a.post == "offline:gemma-3-270m-sft" and a.layer == 9
    assert a.cards == 8
    a = p.parse_args(["crosscoder", "eval", "--crosscoder", "c", "--out", "x", "--cards", "3"])
    assert a.layer is None and not hasattr(a, "d_sae") and a.cards == 3  # eval has only its own flags
    a = p.parse_args(["crosscoder", "eval", "--crosscoder", "c", "--out", "x", "--sources", "persona"])
    assert a.sources == ("persona",)
    sub = next(x for x in p._actions if isinstance(x, argparse._SubParsersAction)).choices["crosscoder"]
    for act in sub._actions:
        if isinstance(act, argparse._SubParsersAction):
            for child in act.choices.values():
                assert child.formatter_class is argparse.ArgumentDefaultsHelpFormatter
                assert all(x.help for x in child._actions if x.dest != "help")
