import json

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

import featurescope as fs
from featurescope.decompose import by_cosine, decoder_cosines, decompose, fraction_explained
from featurescope.errors import FeaturescopeError
from featurescope.evidence.massive import OUTLIER_K
from featurescope.persona import vectors_from_conversations
from featurescope.saes import SAEMismatchError, ce_loss_recovered, check_sae, load_sae, reconstruction_metrics
from tests.conftest import make_tiny_tl

PLANTED = (5, 9, 20)


def make_sae(d_in=32, d_sae=48, hook="blocks.0.hook_resid_post", model_name="planted", seed=0):
    """A synthetic SAE: 32 orthonormal decoder rows plus 16 random ones; encoder = decoder transpose."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d_in, d_in, generator=g))
    extra = torch.nn.functional.normalize(torch.randn(d_sae - d_in, d_in, generator=g), dim=-1)
    W_dec = torch.cat([q.T, extra])
    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae)
    cfg.metadata.hook_name = hook
    cfg.metadata.model_name = model_name
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_dec.copy_(W_dec)
        sae.W_enc.copy_(W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


@pytest.fixture(scope="module")
def planted_model(char_tok):
    """Tiny model whose '!' embedding carries u = (d5 + d9 + d20)/sqrt(3), three decoder rows of the synthetic SAE."""
    sae = make_sae()
    u = sae.W_dec[list(PLANTED)].sum(0) / 3**0.5
    tl = make_tiny_tl(char_tok, seed=5)
    with torch.no_grad():
        tl.W_E[char_tok.convert_tokens_to_ids("!")] += 50 * u
    return fs.from_hooked_transformer(tl, name="planted", stage="post-trained", tokenizer=char_tok), sae, u


def test_planted_direction_decomposes_into_its_three_features(planted_model):
    model, sae, u = planted_model
    pos = [
        [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"Great {i}!!! Yes!!"}]
        for i in range(8)
    ]
    neg = [
        [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"Great {i}... Yes.."}]
        for i in range(8)
    ]
    hook = "blocks.0.hook_resid_pre"
    # the planted '!' tokens are ~50x the others' norm: the plain mean difference (no outlier-token exclusion, no
    # massive-dimension handling) is the vector whose decomposition is known
    vecs, acts = vectors_from_conversations(
        model, pos, neg, [hook], trait="planted", kinds=("response_mean",), handling="none", outlier_k=None
    )
    v = vecs["response_mean"].at(hook)
    # all-token activations of each side, for the encode / attribution views
    pa = fs.capture(model, pos, [hook], reduction="all", progress=False)
    na = fs.capture(model, neg, [hook], reduction="all", progress=False)
    pm, nm = pa.role_ids == 3, na.role_ids == 3
    res = decompose(v, sae, pos_acts=pa[hook][pm], neg_acts=na[hook][nm], k=10)
    for method, d in res.items():
        assert set(d.indices[:3].tolist()) == set(PLANTED), (method, d.top(5))
    # three features reconstruct the vector almost entirely; one does not
    fe = res["cosine"].fraction_explained
    assert fe[2] >= 0.9 and fe[0] < 0.6
    assert res["cosine"].k_for(0.9) == 3


def test_fraction_explained_exact():
    W = torch.eye(4)
    v = torch.tensor([3.0, 4.0, 0.0, 0.0])
    fe = fraction_explained(v, W, torch.tensor([1, 0, 2]))
    torch.testing.assert_close(fe.double(), torch.tensor([16 / 25, 1.0, 1.0], dtype=torch.float64))


def test_decoder_cosines_batched_over_layers():
    W = torch.randn(18, 1000, 64)
    v = torch.randn(18, 64)
    c = decoder_cosines(v, W)
    assert c.shape == (18, 1000)
    torch.testing.assert_close(
        c[3, 7], torch.nn.functional.cosine_similarity(W[3, 7], v[3], dim=0), atol=1e-5, rtol=1e-5
    )
    d = by_cosine(v[0], W[0], k=5)
    assert float(d.scores[0]) == pytest.approx(float(c[0].max()), abs=1e-5)


def test_local_sae_folder_round_trip_and_checks(tiny_chat, tmp_path):
    sae = make_sae(hook="blocks.1.hook_resid_post", model_name="tiny-chat")
    sae.save_model(tmp_path / "sae")
    back = load_sae(tmp_path / "sae")
    torch.testing.assert_close(back.W_dec, sae.W_dec)
    assert check_sae(back, tiny_chat) == "blocks.1.hook_resid_post"
    with pytest.raises(SAEMismatchError, match="trained on 'blocks.1.hook_resid_post'"):
        check_sae(back, tiny_chat, hook="blocks.2.hook_resid_post")
    wide = make_sae(d_in=40, d_sae=48, hook="blocks.1.hook_resid_post", model_name="tiny-chat")
    with pytest.raises(SAEMismatchError, match="d_in is 40"):
        check_sae(wide, tiny_chat)
    other = make_sae(hook="blocks.1.hook_resid_post", model_name="gemma-2-2b")
    with pytest.raises(SAEMismatchError, match="allow_other_model"):
        check_sae(other, tiny_chat)
    assert check_sae(other, tiny_chat, allow_other_model=True)
    with pytest.raises(fs.FeaturescopeError, match="cfg.json"):
        load_sae(tmp_path)
    with pytest.raises(fs.FeaturescopeError, match="unknown sae-lens release"):
        load_sae("gemma-scope-2-270m-pt-rez", "layer_9")


def test_reconstruction_metrics_known_answers(tiny_chat):
    sae = make_sae(d_sae=32)  # orthonormal, tied, no bias, ReLU: reconstructs the positive part of each coordinate
    x = torch.randn(500, 32)
    sae.requires_grad_(False)
    m = reconstruction_metrics(sae, x, outlier_quantile=0.0)
    coords = x @ sae.W_dec.T
    recon = torch.relu(coords) @ sae.W_dec
    fve = 1 - ((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert m["fraction_variance_explained"] == pytest.approx(float(fve), rel=1e-4)
    assert m["l0"] == pytest.approx(float((coords > 0).sum(1).float().mean()), rel=1e-5)
    assert m["dead_fraction"] == 0.0 and m["n_tokens"] == 500
    m2 = reconstruction_metrics(sae, x, outlier_quantile=0.05)
    assert m2["n_excluded_outliers"] == 25


def test_ce_loss_recovered_is_one_for_a_perfect_sae(tiny_chat):
    # a "perfect" SAE: identity-like with both signs (2d latents: +e_i and -e_i)
    d = 32
    cfg = StandardSAEConfig(d_in=d, d_sae=2 * d)
    cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    sae = StandardSAE(cfg)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.W_enc.copy_(torch.cat([eye, -eye]).T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    toks = torch.stack([fs.format_conversation(tiny_chat, f"Hello number {i}?").tokens[:12] for i in range(3)])
    acts = fs.capture(tiny_chat, ["Hello number 7?"], ["blocks.1.hook_resid_post"], reduction="all", progress=False)
    r = ce_loss_recovered(sae, tiny_chat, toks, mean=acts["blocks.1.hook_resid_post"].mean(0))
    assert r["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert r["ce_with_sae"] == pytest.approx(r["ce_clean"], abs=1e-5)
    # the stricter baseline: mean ablation, and the CE increase in nats
    assert r["ce_loss_recovered_vs_mean"] == pytest.approx(1.0, abs=1e-3)
    assert r["ce_mean_ablation"] > r["ce_clean"] and r["ce_increase_nats"] == pytest.approx(0.0, abs=1e-5)


def test_feature_card_finds_the_planted_token(planted_model):
    from featurescope.cards import cards_html, make_cards

    model, sae, u = planted_model
    sae.cfg.metadata.hook_name = "blocks.0.hook_resid_pre"
    texts = ["hello there friend", "wow! that is great", "plain words only", "yes!! indeed", "nothing here at all"]
    rows = [model.tokenizer(t, add_special_tokens=True)["input_ids"][:16] for t in texts]
    rows = torch.tensor([r + [model.tokenizer.pad_token_id] * (16 - len(r)) for r in rows])
    cards = make_cards(model, sae, rows, [PLANTED[0], 40], n_contexts=3)
    c = cards[0]
    assert c.contexts and all(ctx["tokens"][ctx["pos"]] == "!" for ctx in c.contexts)
    assert 0 < c.density < 0.5 and len(c.promoted) == 8 and len(c.suppressed) == 8
    page = cards_html(cards, "planted")
    assert "feature 5" in page and "data:image/png;base64" in page and c._repr_html_() == c.to_html()


def _tiny_rows(tok, n=96, context=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, len(tok), (n, context), generator=g)
    ids[:, 0] = tok.bos_token_id
    return ids


def test_activation_stats_matches_a_direct_capture_without_bos(tiny_chat, char_tok):
    from featurescope.saes import activation_stats

    rows = _tiny_rows(char_tok, n=20, context=16)
    hooks = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    stats = activation_stats(tiny_chat, hooks, rows, batch_size=7)
    _, cache = tiny_chat.tl.run_with_cache(rows, names_filter=hooks)
    for h in hooks:
        x = cache[h][:, 1:].reshape(-1, tiny_chat.d_model)  # BOS is column 0 of every row
        torch.testing.assert_close(stats[h][0], x.mean(0), atol=1e-5, rtol=1e-4)
        assert stats[h][1] == pytest.approx(x.norm(dim=-1).mean().item(), rel=1e-4)


def test_train_saes_with_sae_lens_runner_round_trips(tiny_chat, char_tok, tmp_path):
    """Two hooks trained from one forward pass; the saved (JumpReLU) SAEs load, fit the model, leave checkpoints
    to resume from, and start their decoder bias at the mean activation."""
    from pathlib import Path

    from featurescope.sae_training import newest_checkpoint, train_saes
    from featurescope.saes import activation_stats, evaluate_sae

    rows = _tiny_rows(char_tok)
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    kw = dict(
        tokens=rows,
        d_sae=64,
        k=4,
        training_tokens=3072,
        lr=1e-3,
        batch_size_tokens=256,
        store_batch_size_prompts=8,
        n_batches_in_buffer=8,
        lr_warm_up_steps=2,
        n_checkpoints=2,
    )
    paths = train_saes(tiny_chat, hooks, tmp_path / "w", **kw)
    assert set(paths) == set(hooks)
    for h in hooks:
        sae = load_sae(paths[h])
        assert check_sae(sae, tiny_chat) == h
        assert sae.cfg.d_sae == 64 and sae.W_dec.shape == (64, tiny_chat.d_model)
        ev = evaluate_sae(sae, tiny_chat, rows[:16], h, ce_batches=1, batch_size=8)
        assert 0 < ev["l0"] < 64 and 0 <= ev["dead_fraction"] <= 1
    excl = json.loads((tmp_path / "w" / "outlier_exclusion.json").read_text())
    assert excl["outlier_k"] == OUTLIER_K and excl["seen"] >= 3072 and 0 <= excl["excluded"] < excl["seen"]
    newest = newest_checkpoint(tmp_path / "w" / "checkpoints")
    assert newest is not None and int(Path(newest).name) >= 1536, newest
    # a resume with other settings (other rows: e.g. other corpus sources; another width) is refused, naming both
    # sides, before anything is written; the run file keeps the checkpoint's settings
    run_file = tmp_path / "w" / "featurescope_run.json"
    saved = json.loads(run_file.read_text())
    assert saved["d_sae"] == 64 and saved["tokens"].startswith("[")
    before = sorted(p.name for p in (tmp_path / "w").rglob("*"))
    with pytest.raises(FeaturescopeError, match=r"d_sae: checkpoint 64, this run 32"):
        train_saes(tiny_chat, hooks, tmp_path / "w", **{**kw, "d_sae": 32})
    with pytest.raises(FeaturescopeError, match=r"tokens: checkpoint .*sha256.*, this run .*sha256"):
        train_saes(tiny_chat, hooks, tmp_path / "w", **{**kw, "tokens": rows.flip(0)})
    with pytest.raises(FeaturescopeError, match=r'sources: checkpoint null, this run \["persona"\]'):
        train_saes(tiny_chat, hooks, tmp_path / "w", **kw, run_info={"sources": ["persona"]})
    assert sorted(p.name for p in (tmp_path / "w").rglob("*")) == before
    assert json.loads(run_file.read_text()) == saved
    # zero-step training keeps the initial weights: b_dec must start at the (unscaled, once folded) mean activation
    stats = activation_stats(tiny_chat, hooks[:1], rows[:64])
    p0 = train_saes(tiny_chat, hooks[:1], tmp_path / "zero", **{**kw, "training_tokens": 0, "n_checkpoints": 0})
    b_dec = load_sae(p0[hooks[0]]).b_dec.detach()
    assert torch.nn.functional.cosine_similarity(b_dec, stats[hooks[0]][0], dim=0) > 0.99


def test_training_store_drops_outlier_norm_tokens_at_any_hook():
    """The sae-lens store wrapper drops tokens whose norm exceeds k x the batch median at either hook (one mask),
    counts them, and refuses a store without the method it wraps."""
    from featurescope.sae_training import exclude_outlier_tokens

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(100, 8, generator=g), torch.randn(100, 8, generator=g)
    a[3] *= 50  # an outlier at the first hook only
    b[7] *= 50  # and one at the second only

    class Store:
        def _get_filtered_multi_hook_llm_batch(self, raise_on_epoch_end: bool = False):
            return {"h0": a.clone(), "h1": b.clone()}

    st = Store()
    counts = exclude_outlier_tokens(st, k=4.0)
    out = st._get_filtered_multi_hook_llm_batch()
    keep = torch.ones(100, dtype=torch.bool)
    keep[[3, 7]] = False
    assert torch.equal(out["h0"], a[keep]) and torch.equal(out["h1"], b[keep])
    assert counts == {"seen": 100, "excluded": 2}
    with pytest.raises(FeaturescopeError, match="outlier"):
        exclude_outlier_tokens(object())


def test_newest_checkpoint_is_the_one_with_most_samples(tmp_path):
    from featurescope.sae_training import newest_checkpoint

    assert newest_checkpoint(tmp_path / "absent") is None
    for n in ("40960", "409600", "81920"):
        (tmp_path / "12345678" / n / "blocks_2").mkdir(parents=True)  # run folders are hex hashes, maybe all digits
        (tmp_path / "12345678" / n / "runner_cfg.json").write_text("{}")
    (tmp_path / "12345678" / "999999" / "blocks_2").mkdir(parents=True)  # an interrupted write: no runner_cfg.json
    assert newest_checkpoint(tmp_path) == str(tmp_path / "12345678" / "409600")


def test_sparse_attribution_drops_a_dense_feature_that_carries_the_vector():
    """Feature 0 fires on every token and carries most of the mean difference; features 5/9/20 fire rarely and
    carry the rest. The plain attribution ranks 0 first; the sparse view (<= 20% density) leaves it out."""
    from featurescope.decompose import response_density

    sae = make_sae()
    n = 200
    fp = torch.zeros(n, 48)
    fn = torch.zeros(n, 48)
    fp[:, 0], fn[:, 0] = 3.0, 1.0  # dense: fires everywhere, +2 on average
    for j, f in enumerate(PLANTED):
        fp[j * 10 : j * 10 + 10, f] = 5.0  # sparse: 10 of 200 trait tokens each
    W = sae.W_dec.detach()
    v = (fp.mean(0) - fn.mean(0)) @ W
    from featurescope.decompose import by_attribution

    full = by_attribution(fp, fn, W, v, k=5)
    assert int(full.indices[0]) == 0
    dens = response_density(fp, fn)
    assert dens[0] == 1.0 and dens[5] == pytest.approx(10 / 400)
    # through decompose(): encode the planted activations back (encoder = decoder transpose, orthonormal rows; a
    # small negative encoder bias keeps float round-off from counting as firing)
    with torch.no_grad():
        sae.b_enc.fill_(-1e-3)
    pos_acts, neg_acts = fp @ W, fn @ W
    res = decompose(v, sae, pos_acts=pos_acts, neg_acts=neg_acts, k=5, max_density=0.2)
    assert int(res["attribution"].indices[0]) == 0
    assert set(res["attribution_sparse"].indices[:3].tolist()) == set(PLANTED)
    assert 0 not in res["attribution_sparse"].indices.tolist()
    # the selectivity view (firing-rate difference) needs no density threshold: the dense feature fires on every
    # token of both sets (difference 0), the planted ones on 10 of 200 trait tokens and no baseline token
    # (in feature space: this synthetic SAE's 16 non-orthogonal extra rows would also fire on the planted tokens)
    from featurescope.decompose import by_selectivity

    sel = by_selectivity(fp, fn, W, v, k=5)
    assert set(sel.indices[:3].tolist()) == set(PLANTED)
    assert sel.scores[:3].tolist() == pytest.approx([0.05] * 3)


def test_shipped_saes_load_by_name(tmp_path, monkeypatch):
    from featurescope.errors import FeaturescopeError
    from featurescope.saes import list_shipped_saes, load_sae, resolve_shipped_sae

    names = list_shipped_saes()
    assert "featurescope:gemma-3-270m/layer_9_resid_post" in names
    assert "featurescope:gemma-3-270m-sft/layer_9_resid_post" in names
    sae = load_sae("featurescope:gemma-3-270m/layer_2_resid_post")
    assert int(sae.cfg.d_in) == 640 and sae.cfg.metadata.hook_name == "blocks.2.hook_resid_post"
    with pytest.raises(FeaturescopeError, match="Did you mean: featurescope:gemma-3-270m/layer_9_resid_post"):
        resolve_shipped_sae("featurescope:gemma-3-270m/layer_9_resid")
    # a copy of the saes/ folder elsewhere (e.g. beside a pip-installed featurescope) is found through FEATURESCOPE_SAES
    import shutil

    shutil.copytree(resolve_shipped_sae("featurescope:gemma-3-270m-sft/layer_9_resid_post"), tmp_path / "m" / "x")
    monkeypatch.setenv("FEATURESCOPE_SAES", str(tmp_path))
    assert resolve_shipped_sae("featurescope:m/x") == tmp_path / "m" / "x"


def test_decompose_vector_is_one_call_with_a_rich_result(tiny_chat, tmp_path, monkeypatch):
    """fs.decompose_vector: views, cards, nulls, the run folder; the result renders, plots and tabulates."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import featurescope.decompose_run as DV
    from featurescope.persona import PersonaVector

    tok = torch.randint(5, 40, (6, 16))
    monkeypatch.setattr(DV.corpus, "sequences", lambda *a, **k: tok)
    hooks = [f"blocks.{i}.hook_resid_post" for i in range(tiny_chat.n_layers)]
    pv = PersonaVector("evil", torch.randn(len(hooks), 32), hooks, "response_mean", "tiny-chat", "post-trained", 3, 3)
    sae = make_sae(d_in=32, d_sae=48, hook="blocks.1.hook_resid_post", model_name="tiny-chat")
    res = fs.decompose_vector(tiny_chat, pv, sae, sae_name="toy", k=10, n_cards=2, out=tmp_path / "d")
    assert "cosine" in res.decompositions and 1 <= len(res.cards) <= 6  # no extraction answers: cosine view only
    assert "fraction_explained_null" in res.evidence
    html = res._repr_html_()
    assert "random directions" in html and "fs-card" in html
    assert res.plot().axes and list(res.to_frame()["view"]) == list(res.decompositions)
    s = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert s["command"] == "decompose" and set(s["results"]) == {"decompositions", "cards", "evidence"}
