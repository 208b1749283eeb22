"""Feature reuse across stages, on tiny models where the 'post-trained' checkpoint is the base plus a known change.

The planted pair: a tiny base model whose residual stream lives in coordinates 0..15 of 32 (embedding and every
output weight zero elsewhere), and a 'post-trained' copy whose residual basis is rotated by 90 degrees in the planes
(e_i, e_{16+i}), i = 0..3 - an exact reparametrisation (RMSNorm weights are 1), so the post model's activations are
the base activations with coordinates 0..3 moved to 16..19. The base SAE has latents +-e_0..+-e_15 (a perfect
dictionary for the base), the post SAE the same latents rotated. Known answers: the base SAE loses exactly the
rotated coordinates on the post model (L0 16 -> 12, FVE = the variance share of the kept coordinates), 24 of 32
latents are reused, the 8 rotated ones are new, and identical models give 100% reuse.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

import featurescope as fs
from featurescope import stages as st
from featurescope.errors import FeaturescopeError
from tests.conftest import make_tiny_tl

D = 32
LIVE = 16  # residual stream lives in coordinates 0..LIVE-1 of the base model
ROT = 4  # coordinates 0..ROT-1 are rotated onto LIVE..LIVE+ROT-1 in the post model
HOOK = "blocks.1.hook_resid_post"


def plane_rotation() -> torch.Tensor:
    """R (row-vector convention, x' = x @ R): e_i -> e_{LIVE+i}, e_{LIVE+i} -> -e_i for i < ROT."""
    R = torch.eye(D)
    for i in range(ROT):
        j = LIVE + i
        R[i, i] = R[j, j] = 0.0
        R[i, j] = 1.0
        R[j, i] = -1.0
    return R


def rotate_residual(tl, R):
    """The same network in a rotated residual basis (exact when every norm weight is 1, as at init)."""
    t = copy.deepcopy(tl)
    with torch.no_grad():
        t.embed.W_E.copy_(t.embed.W_E @ R)
        for b in t.blocks:
            for name in ("W_Q", "W_K", "W_V"):
                w = getattr(b.attn, name)
                w.copy_(torch.einsum("ed,hek->hdk", R, w))
            b.attn.W_O.copy_(b.attn.W_O @ R)
            b.attn.b_O.copy_(b.attn.b_O @ R)
            b.mlp.W_in.copy_(R.T @ b.mlp.W_in)
            b.mlp.W_out.copy_(b.mlp.W_out @ R)
            b.mlp.b_out.copy_(b.mlp.b_out @ R)
        t.unembed.W_U.copy_(R.T @ t.unembed.W_U)
    return t


def signed_basis_sae(rows: torch.Tensor, model_name: str, hook: str = HOOK) -> StandardSAE:
    """Latents +-rows (2k latents), tied encoder, no biases: exact on the span of ``rows`` (orthonormal)."""
    W = torch.cat([rows, -rows])
    cfg = StandardSAEConfig(d_in=W.shape[1], d_sae=W.shape[0])
    cfg.metadata.hook_name = hook
    cfg.metadata.model_name = model_name
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_dec.copy_(W)
        sae.W_enc.copy_(W.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    sae.requires_grad_(False)
    return sae


@pytest.fixture(scope="module")
def planted(char_tok):
    tl = make_tiny_tl(char_tok, n_layers=2, d_model=D, seed=3, n_ctx=1024)
    with torch.no_grad():  # confine the residual stream to coordinates 0..LIVE-1
        tl.embed.W_E[:, LIVE:] = 0
        for b in tl.blocks:
            b.attn.W_O[..., LIVE:] = 0
            b.attn.b_O[LIVE:] = 0
            b.mlp.W_out[:, LIVE:] = 0
            b.mlp.b_out[LIVE:] = 0
    R = plane_rotation()
    base = fs.from_hooked_transformer(tl, name="tiny-base", stage="base", tokenizer=char_tok)
    same = fs.from_hooked_transformer(copy.deepcopy(tl), name="tiny-same", stage="post-trained", tokenizer=char_tok)
    post = fs.from_hooked_transformer(
        rotate_residual(tl, R), name="tiny-rotated", stage="post-trained", tokenizer=char_tok
    )
    E = torch.eye(D)[:LIVE]
    return {
        "base": base,
        "same": same,
        "post": post,
        "R": R,
        "base_sae": signed_basis_sae(E, "tiny-base"),
        "post_sae": signed_basis_sae(E @ R, "tiny-rotated"),
    }


CONVS = [
    [
        {"role": "user", "content": f"Question {i}: what is {i} plus {i}?"},
        {"role": "assistant", "content": f"It is {2 * i}. Anything else about number {i}?"},
    ]
    for i in range(10)
]


def plain_rows(tok, n=6, ctx=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    text = "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. " * 8
    ids = tok(text, add_special_tokens=False)["input_ids"]
    rows = []
    for _ in range(n):
        s = int(torch.randint(0, len(ids) - ctx, (1,), generator=g))
        rows.append([tok.bos_token_id] + ids[s : s + ctx - 1])
    t = torch.tensor(rows)
    return st.TokenRows(t, torch.zeros_like(t), "test rows")


CFG = st.StagesConfig(
    context=48,
    ce_rows=4,
    outlier_quantile=0.0,
    n_cards=3,
    traits=("evil",),
    persona_questions=1,
    persona_format="post",
    persona_top_k=5,
    block_rows=16,
    block_cols=12,
    top_k_shift=10,
    parts=("transfer", "matching", "shift", "persona"),
    card_plain_rows=2,
)


# ---------------------------------------------------------------------------------------------------------------
# matching (pure)
# ---------------------------------------------------------------------------------------------------------------
def test_match_identical_dictionaries_is_full_reuse_and_finds_the_permutation():
    W = torch.nn.functional.normalize(torch.randn(300, 64, generator=torch.Generator().manual_seed(0)), dim=-1)
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(1))
    scaled = W[perm] * torch.rand(300, 1, generator=torch.Generator().manual_seed(2)).add(0.5)  # norms do not matter
    m = st.match_dictionaries(scaled, W, block_rows=64, block_cols=50)
    assert torch.allclose(m.a_to_b_cos, torch.ones(300), atol=1e-5)
    assert torch.equal(m.a_to_b_idx, perm)
    assert torch.equal(m.b_to_a_idx[perm], torch.arange(300))
    assert st.reuse_fraction(m.a_to_b_cos) == 1.0
    rep, _, base_line = st.matching_report(scaled, W, seed=3, block_rows=64, block_cols=50)
    assert rep["fraction_post_reused"] == 1.0 and rep["n_new"] == 0 and rep["n_lost"] == 0
    for bl in ("random", "rotated"):  # chance level: nothing clears 0.7 in 64 dimensions
        assert rep["baselines"][bl]["fraction_post_reused"] == 0.0
        assert 0.2 < rep["baselines"][bl]["median_best_cos"] < 0.6
    assert sum(rep["histograms"]["post_to_base"]["counts"]) == 300


def test_tiled_matching_equals_the_dense_computation():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(257, 48, generator=g), torch.randn(131, 48, generator=g)
    a[5] = 0  # a dead latent with a zero decoder row: cosine 0 with everything
    S = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T
    for br, bc in ((17, 19), (257, 131), (4096, 8192), (1, 131), (257, 1)):
        m = st.match_dictionaries(a, b, block_rows=br, block_cols=bc)
        torch.testing.assert_close(m.a_to_b_cos, S.max(1).values, atol=1e-6, rtol=0)
        torch.testing.assert_close(m.b_to_a_cos, S.max(0).values, atol=1e-6, rtol=0)
        keep = torch.arange(257) != 5
        assert torch.equal(m.a_to_b_idx[keep], S.max(1).indices[keep])
        assert torch.equal(m.b_to_a_idx, S.max(0).indices)
    assert float(m.a_to_b_cos[5]) == 0.0


def test_matching_a_rotated_subspace_loses_exactly_those_features():
    R = plane_rotation()
    base = torch.cat([torch.eye(D)[:LIVE], -torch.eye(D)[:LIVE]])
    post = base @ R
    rep, m, _ = st.matching_report(post, base, threshold=0.7, seed=0)
    moved = sorted([*range(ROT), *range(LIVE, LIVE + ROT)])  # +-e_0..3 in the signed layout
    assert rep["fraction_post_reused"] == pytest.approx(24 / 32) and rep["fraction_base_kept"] == pytest.approx(24 / 32)
    assert (m.a_to_b_cos < 0.7).nonzero().flatten().tolist() == moved
    assert (m.b_to_a_cos < 0.7).nonzero().flatten().tolist() == moved
    assert torch.allclose(m.a_to_b_cos[[i for i in range(32) if i not in moved]], torch.ones(24))


def test_width_mismatch_is_a_clear_error():
    with pytest.raises(st.DictionaryMismatchError, match="d_model 32 vs 40") as e:
        st.match_dictionaries(torch.randn(5, 32), torch.randn(6, 40))
    assert isinstance(e.value, FeaturescopeError)
    with pytest.raises(st.StagesError, match="unknown part"):
        st.StagesConfig(parts=("transfer", "vibes"))


# ---------------------------------------------------------------------------------------------------------------
# activation shift and persona helpers (pure)
# ---------------------------------------------------------------------------------------------------------------
def test_encode_stats_and_activation_shift_known_answers():
    acts = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 4.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    a = st.encode_stats(torch.relu, acts, 3, batch_size=3)
    torch.testing.assert_close(a.frequency, torch.tensor([0.5, 0.0, 0.5]))
    torch.testing.assert_close(a.mean, torch.tensor([1.0, 0.0, 1.5]))
    torch.testing.assert_close(a.mean_when_active, torch.tensor([2.0, 0.0, 3.0]))
    b = st.encode_stats(torch.relu, acts[:, [1, 0, 2]] * torch.tensor([1.0, 1.0, 2.0]), 3)  # latent 0 -> 1; 2 doubles
    s = st.activation_shift(a, b, k=3, rank_by="frequency")
    assert [r["latent"] for r in s["up"]] == [1] and [r["latent"] for r in s["down"]] == [0]
    assert s["alive_base_only"] == 1 and s["alive_post_only"] == 1 and s["alive_both"] == 1
    s2 = st.activation_shift(a, b, k=3, rank_by="mean_activation")
    assert [r["latent"] for r in s2["up"]][:2] == [2, 1] and s2["up"][0]["delta_mean"] == pytest.approx(1.5)


def test_persona_helpers():
    v = torch.randn(3, 8)
    cos = st.layer_cosines(v, torch.stack([v[0], -v[1], 2 * v[2]]))
    torch.testing.assert_close(cos, torch.tensor([1.0, -1.0, 1.0]))
    assert st.feature_overlap([1, 2, 3], [3, 4, 2]) == {"jaccard": 0.5, "shared": [2, 3], "n": 3}
    mo = st.matched_overlap([0, 1, 2], [7, 9], torch.tensor([7, 8, 9]), torch.tensor([0.9, 0.95, 0.3]), 0.7)
    assert mo["fraction_of_base_top_matched"] == pytest.approx(2 / 3) and mo["shared_post_latents"] == [7]


# ---------------------------------------------------------------------------------------------------------------
# crosscoder: relative norm + Latent Scaling on planted data
# ---------------------------------------------------------------------------------------------------------------
def planted_crosscoder(n_tok=2000, seed=0):
    """Latents: 0-5 shared (same decoder in both models), 6 true post-only, 7 a *false* post-only latent (its base
    decoder is zero but the base activations carry it: Complete Shrinkage), 8 a post-only latent whose base
    contribution is carried by base-only latent 9 that fires with it (Latent Decoupling), 9 base-only."""
    g = torch.Generator().manual_seed(seed)
    d = 24
    Q = torch.linalg.qr(torch.randn(d, d, generator=g))[0].T  # orthonormal rows
    S, T, Fz, P = Q[:6], Q[6], Q[7], Q[8]
    n = 10
    W_dec = torch.zeros(2, n, d)
    W_dec[:, :6] = S
    W_dec[1, 6], W_dec[1, 7], W_dec[1, 8] = T, Fz, P
    W_dec[0, 9] = P
    W_enc = torch.zeros(2, d, n)
    W_enc[:, :, :6] = S.T / 2
    W_enc[1, :, 6], W_enc[1, :, 7], W_enc[1, :, 8] = T, Fz, P
    W_enc[0, :, 9] = P
    f = torch.rand(n_tok, n, generator=g) * (torch.rand(n_tok, n, generator=g) < 0.3)
    f[:, 9] = f[:, 8]
    h_base = f[:, :6] @ S + f[:, 7:8] * Fz + f[:, 9:10] * P
    h_post = f[:, :6] @ S + f[:, 6:7] * T + f[:, 7:8] * Fz + f[:, 8:9] * P
    cc = st.CrosscoderWeights(W_enc=W_enc, b_enc=torch.zeros(n), W_dec=W_dec, b_dec=torch.zeros(2, d))
    return cc, h_base, h_post, f


def test_relative_norm_classification():
    cc, *_ = planted_crosscoder()
    r = st.relative_decoder_norm(cc.W_dec[0], cc.W_dec[1])
    torch.testing.assert_close(r, torch.tensor([0.5] * 6 + [1.0, 1.0, 1.0, 0.0]))
    cls = st.classify_latents(r)
    assert cls["base_only"].tolist() == [9] and cls["post_only"].tolist() == [6, 7, 8]
    assert cls["shared"].tolist() == list(range(6))
    with pytest.raises(st.DictionaryMismatchError):
        st.relative_decoder_norm(torch.zeros(3, 4), torch.zeros(3, 5))


def test_latent_scaling_separates_true_from_false_post_only_latents(tmp_path):
    cc, hb, hp, f = planted_crosscoder()
    torch.testing.assert_close(cc.encode(torch.stack([hb, hp], 1)), f, atol=1e-5, rtol=0)  # encoder recovers f
    rec = cc.decode(f)
    idx = [6, 7, 8, 0]
    b = st.latent_scaling(f[:, idx], cc.W_dec[1][idx], torch.stack([hb, hp]), rec, cc.W_dec[:, idx])
    # true post-only (6): nothing of it in the base model, by either target
    assert abs(float(b["beta_error_base"][0])) < 1e-4 and abs(float(b["beta_recon_base"][0])) < 1e-4
    # complete shrinkage (7): the base *error* carries it fully
    assert float(b["beta_error_base"][1]) == pytest.approx(1.0, abs=1e-4)
    # latent decoupling (8): the base *reconstruction* (through latent 9) carries it fully
    assert float(b["beta_recon_base"][2]) == pytest.approx(1.0, abs=1e-4)
    # the post side explains each latent fully; a shared latent explains itself in both models
    torch.testing.assert_close(b["beta_error_post"][:3], torch.ones(3), atol=1e-4, rtol=0)
    assert float(b["beta_error_base"][3]) == pytest.approx(1.0, abs=1e-4)
    # the report (through the encoder, in chunks) keeps only latent 6; both checkpoint layouts load the same weights
    from safetensors.torch import save_file

    save_file(
        {
            "encoder.weight": cc.W_enc,
            "encoder.bias": cc.b_enc,
            "decoder.weight": cc.W_dec,
            "decoder.bias": cc.b_dec,
            "threshold": torch.tensor(-1.0),
        },
        str(tmp_path / "dl.safetensors"),
    )
    torch.save(
        {"W_enc": cc.W_enc, "W_dec": cc.W_dec.permute(1, 0, 2).contiguous(), "b_enc": cc.b_enc, "b_dec": cc.b_dec},
        tmp_path / "kissane.pt",
    )
    for p in ("dl.safetensors", "kissane.pt"):
        loaded = st.load_crosscoder(tmp_path / p)
        torch.testing.assert_close(loaded.W_dec, cc.W_dec)
        assert loaded.threshold is None
        rep, ten = st.crosscoder_report(loaded, hb, hp, batch_size=333)
        assert rep["counts"] == {"base_only": 1, "post_only": 3, "shared": 6}
        assert rep["true_post_only_latents"] == [6] and rep["flagged_post_only_latents"] == [7, 8]
        assert rep["nu_error_median"]["shared"] == pytest.approx(1.0, abs=1e-3)
        why = {x["latent"]: x for x in rep["post_only_latent_scaling"]}
        assert why[6]["verdict"] == "truly post-only" and why[7]["verdict"] == why[8]["verdict"] == "artefact"
        assert "Complete Shrinkage" in why[7]["reason"]
        # latent 8: nothing of it in the post reconstruction (nu_recon = 1 / ~0 is undefined), but the base
        # reconstruction carries it fully through latent 9 - Latent Decoupling is still caught
        assert not why[8]["nu_recon_used"] and "Latent Decoupling" in why[8]["reason"]
    with pytest.raises(st.StagesError, match="not a crosscoder"):
        save_file({"x": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
        st.load_crosscoder(tmp_path / "bad.safetensors")


def test_latent_scaling_recon_floor_both_ways():
    """nu_recon = beta_recon_base / beta_recon_post is used only when the post reconstruction carries the latent's
    direction (|beta_recon_post| >= recon_floor x beta_error_post). Two post-only latents (0: T1, 2: T2), each firing
    with a shared partner (1, 3) whose decoder row has a component ``a`` along it, so both models' reconstructions
    carry ``a`` of the direction and nu_recon = a / a = 1: with a = 0.5 the direction is really in the
    reconstruction (an artefact, as before); with a = 0.03 the two betas are negligible and nu_recon ~ 1 means
    nothing (the planted sae-lens case had 0.0216 / 0.0199): truly post-only, with the reason said."""
    from featurescope.stages.crosscoder import latent_scaling_verdicts

    g = torch.Generator().manual_seed(1)
    d, n_tok = 16, 3000
    Q = torch.linalg.qr(torch.randn(d, d, generator=g))[0].T  # orthonormal rows
    W_dec, W_enc = torch.zeros(2, 4, d), torch.zeros(2, d, 4)
    for j, (a, T, U) in enumerate([(0.03, Q[0], Q[1]), (0.5, Q[2], Q[3])]):
        post_only, partner = 2 * j, 2 * j + 1
        dk = a * T + (1 - a * a) ** 0.5 * U
        W_dec[1, post_only], W_dec[:, partner] = T, dk
        W_enc[0, :, partner] = dk  # the partner reads the base activation, the post-only latent the difference
        W_enc[0, :, post_only], W_enc[1, :, post_only] = -T, T
    f = torch.rand(n_tok, 4, generator=g) * (torch.rand(n_tok, 4, generator=g) < 0.3)
    f[:, 1], f[:, 3] = f[:, 0], f[:, 2]  # each pair fires together
    h_base = f[:, 1:2] * W_dec[0, 1] + f[:, 3:4] * W_dec[0, 3]
    h_post = h_base + f[:, 0:1] * W_dec[1, 0] + f[:, 2:3] * W_dec[1, 2]
    cc = st.CrosscoderWeights(W_enc=W_enc, b_enc=torch.zeros(4), W_dec=W_dec, b_dec=torch.zeros(2, d))
    torch.testing.assert_close(cc.encode(torch.stack([h_base, h_post], 1)), f, atol=1e-5, rtol=0)
    rep, ten = st.crosscoder_report(cc, h_base, h_post)
    assert rep["counts"] == {"base_only": 0, "post_only": 2, "shared": 2}
    # both: no Complete Shrinkage (nu_error = 0), and nu_recon = 1 - the old rule (both nu < nu_max) flags both
    torch.testing.assert_close(ten["nu_error"][:2], torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(ten["nu_recon"][:2], torch.ones(2), atol=1e-3, rtol=0)
    torch.testing.assert_close(ten["beta_recon_post"][:2], torch.tensor([0.03, 0.5]), atol=1e-4, rtol=0)
    assert rep["true_post_only_latents"] == [0] and rep["flagged_post_only_latents"] == [2]
    assert rep["post_only_nu_recon_undefined"] == 1 and rep["thresholds"]["recon_floor"] == 0.1
    why = {x["latent"]: x for x in rep["post_only_latent_scaling"]}
    assert why[0]["verdict"] == "truly post-only" and not why[0]["nu_recon_used"]
    assert "no reconstruction component" in why[0]["reason"] and "not used" in why[0]["reason"]
    assert why[2]["verdict"] == "artefact" and why[2]["nu_recon_used"] and "Latent Decoupling" in why[2]["reason"]
    assert why[2]["nu_recon"] == pytest.approx(1.0, abs=1e-3)
    # the floor is the only thing that changed: with no floor latent 0 is an artefact again; with a floor above 0.5
    # latent 2's nu_recon is undefined too, and its base reconstruction (0.5 x beta_error_post >= nu_max) flags it
    post = {k: v[:2] for k, v in ten.items() if k.startswith(("beta_", "nu_"))}
    assert latent_scaling_verdicts(post, recon_floor=0.0)["true_post"].tolist() == [False, False]
    v = latent_scaling_verdicts(post, recon_floor=0.6)
    assert v["nu_recon_defined"].tolist() == [False, False] and v["true_post"].tolist() == [True, False]


def test_stages_reads_a_new_layout_crosscoder_in_its_training_space(planted, tmp_path):
    """The post model is the base model with its residual stream x c (every residual write scaled; RMSNorm makes the
    rest identical). A crosscoder saved by featurescope.crosscoder (sae-lens folder; training scales (s, s / c) in
    cfg.json) with shared latents +-e_i: read in its training space, stages finds every latent shared at r = 0.5
    with nu ~ 1; the same weights as a dictionary_learning file (no scales recorded) stay in raw units, where r ->
    c / (1 + c) and nu -> 1 / c."""
    import dataclasses

    from safetensors.torch import save_file

    from featurescope.crosscoder_sae import BatchTopKCrosscoderTrainingSAE, BatchTopKCrosscoderTrainingSAEConfig

    c, s = 3.0, 2.0
    base = planted["base"]
    tl = copy.deepcopy(base.tl)
    with torch.no_grad():
        tl.embed.W_E.mul_(c)
        for b in tl.blocks:
            for w in (b.attn.W_O, b.attn.b_O, b.mlp.W_out, b.mlp.b_out):
                w.mul_(c)
    post = fs.from_hooked_transformer(tl, name="tiny-scaled", stage="post-trained", tokenizer=base.tokenizer)
    prow = plain_rows(base.tokenizer)
    a_b, _, keep = st.capture_rows(base, prow, HOOK)
    a_p = st.capture_rows(post, prow, HOOK)[0]
    assert float((a_p - c * a_b)[keep].norm() / (c * a_b[keep]).norm()) < 1e-2  # exact but for RMSNorm's eps

    E = torch.eye(D)[:LIVE]
    W = torch.cat([E, -E])  # 2 LIVE latents, exact on the live coordinates
    n = len(W)
    sae = BatchTopKCrosscoderTrainingSAE(
        BatchTopKCrosscoderTrainingSAEConfig(d_in=2 * D, d_sae=n, k=n, decoder_init_norm=1.0)
    )
    with torch.no_grad():  # training-space weights: both models' scaled activations read and written alike
        sae.W_enc.copy_(torch.cat([W.T, W.T]) / 2)
        sae.W_dec.copy_(torch.cat([W, W], 1))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.topk_threshold.fill_(0.0)
        sae.activation_scales.copy_(torch.tensor([s, s / c]))
    sae.cfg.metadata.activation_scales = [s, s / c]
    sae.cfg.metadata.hook_name = HOOK
    sae.save_inference_model(tmp_path / "cc")
    raw = st.load_crosscoder(tmp_path / "cc")
    save_file(
        {
            "encoder.weight": raw.W_enc,
            "encoder.bias": raw.b_enc,
            "decoder.weight": raw.W_dec,
            "decoder.bias": raw.b_dec,
        },
        str(tmp_path / "dl.safetensors"),
    )

    def stages(out: str, crosscoder: str) -> dict:
        sae_b, cfg = planted["base_sae"], dataclasses.replace(CFG, parts=("crosscoder",))
        res = st.run_stages(
            base,
            post,
            sae_b,
            sae_b,
            HOOK,
            tmp_path / out,
            config=cfg,
            crosscoder=tmp_path / crosscoder,
            conversations=CONVS,
            plain_rows=prow,
            progress=False,
        )
        return res["crosscoder"]

    cc = stages("new", "cc")
    assert cc["space"].startswith("training space") and cc["activation_scales"] == pytest.approx([s, s / c])
    assert cc["counts"] == {"base_only": 0, "post_only": 0, "shared": n}
    assert cc["nu_error_median"]["shared"] == pytest.approx(1.0, abs=0.02)
    assert cc["relative_norm_hist"]["counts"][10] == n  # every r in [0.5, 0.55): 2r - 1 in [0, 0.1)
    summary = json.loads((tmp_path / "new" / "summary.json").read_text())["results"]["crosscoder"]
    assert summary["space"] == cc["space"] and summary["activation_scales"] == pytest.approx([s, s / c])
    # the same weights in the dictionary_learning layout: raw units, as before (r = 0.75 is still "shared")
    cc = stages("old", "dl.safetensors")
    assert cc["space"] == "raw activations" and cc["activation_scales"] is None
    assert cc["counts"]["shared"] == n and cc["nu_error_median"]["shared"] == pytest.approx(1 / c, abs=0.02)
    assert cc["relative_norm_hist"]["counts"][15] == n  # r = c / (1 + c) = 0.75: 2r - 1 = 0.5


# ---------------------------------------------------------------------------------------------------------------
# the whole run on the planted pair
# ---------------------------------------------------------------------------------------------------------------
def test_pack_conversations_keeps_roles_and_starts_rows_with_bos(planted):
    fps = [fs.format_conversation(planted["post"], c, kind="chat") for c in CONVS[:3]]
    rows = st.pack_conversations(fps, 40, planted["post"].tokenizer.bos_token_id)
    stream = torch.cat([p.tokens for p in fps])
    n = len(stream) // 39
    assert rows.tokens.shape == (n, 40) and bool((rows.tokens[:, 0] == planted["post"].tokenizer.bos_token_id).all())
    assert torch.equal(rows.tokens[:, 1:].reshape(-1), stream[: n * 39])
    assert torch.equal(rows.role_ids[:, 1:].reshape(-1), torch.cat([p.role_ids for p in fps])[: n * 39])
    assert int((rows.role_ids == 3).sum()) > 0


def test_identical_models_give_full_reuse_and_equal_transfer(planted, tmp_path):
    base, same, sae = planted["base"], planted["same"], planted["base_sae"]
    res = st.run_stages(
        base,
        same,
        sae,
        sae,
        HOOK,
        tmp_path,
        config=CFG,
        conversations=CONVS,
        plain_rows=plain_rows(base.tokenizer),
        progress=False,
    )
    tr = res["transfer"]
    for set_k in ("plain", "chat"):
        a, b = tr["base_sae"]["base_model"][set_k], tr["base_sae"]["post_model"][set_k]
        assert a["fraction_variance_explained"] == pytest.approx(1.0, abs=1e-5) == b["fraction_variance_explained"]
        assert a["l0"] == b["l0"] == LIVE
        assert a["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-3)
    assert res["matching"]["fraction_post_reused"] == 1.0 and res["matching"]["n_new"] == 0
    assert res["activation_shift"]["base_sae"]["up"] == [] and res["activation_shift"]["base_sae"]["down"] == []
    ev = res["persona"]["traits"]["evil"]
    assert all(c == pytest.approx(1.0, abs=1e-5) for c in ev["cosine_per_layer"])
    assert ev["top_features_base_sae"]["jaccard"] == 1.0
    assert isinstance(res, st.StagesResult) and "random_lora_null" not in res["transfer"]
    assert "no random-LoRA null" in res._repr_html_()
    # the same rows read by identical models: the paired FVE difference is 0 with a zero-width interval
    for sk in ("base_sae", "post_sae"):
        for set_k in ("plain", "chat"):
            ev = tr["fve_post_minus_base"][sk][set_k]
            assert ev["estimate"]["lo"] == ev["estimate"]["hi"] == 0.0
            assert ev["verdict"] == "not distinguishable from the null"
    lines = [json.loads(x) for x in (tmp_path / "transfer_rows.jsonl").read_text().splitlines()]
    n_rows = res["texts"]["plain"]["rows"] + res["texts"]["chat"]["rows"]
    assert len(lines) == 2 * 2 * n_rows and set(lines[0]) == {"sae", "model", "texts", "row", "sse", "sst", "n_tokens"}


def test_rotated_subspace_is_lost_in_transfer_matching_and_shift(planted, tmp_path):
    base, post, bs, ps, R = planted["base"], planted["post"], planted["base_sae"], planted["post_sae"], planted["R"]
    prow = plain_rows(base.tokenizer)
    res = st.run_stages(
        base,
        post,
        bs,
        ps,
        1,
        tmp_path,
        config=CFG,
        conversations=CONVS,
        plain_rows=prow,
        progress=False,
        null_model=base,  # a "random LoRA" of zero change: the null equals the base model's own numbers
    )
    null = res["transfer"]["random_lora_null"]
    for set_k in ("plain", "chat"):
        assert null[set_k]["fraction_variance_explained"] == pytest.approx(
            res["transfer"]["base_sae"]["base_model"][set_k]["fraction_variance_explained"], abs=1e-6
        )
    # the planted change is exact: the post model's activations are the base ones rotated
    a_b, _, keep = st.capture_rows(base, prow, HOOK)
    a_p, _, _ = st.capture_rows(post, prow, HOOK)
    torch.testing.assert_close(a_p, a_b @ R, atol=1e-4, rtol=1e-4)
    # 1. transfer: the base SAE keeps coordinates 4..15 of the post activations, nothing of 16..19
    x = a_p[keep]
    lost = (x[:, LIVE : LIVE + ROT] ** 2).sum()
    fve = 1 - float(lost / ((x - x.mean(0)) ** 2).sum())
    tr = res["transfer"]
    m = tr["base_sae"]["post_model"]["plain"]
    assert m["fraction_variance_explained"] == pytest.approx(fve, abs=1e-4) and fve < 0.95
    assert m["l0"] == LIVE - ROT and tr["base_sae"]["base_model"]["plain"]["l0"] == LIVE
    assert tr["base_sae"]["base_model"]["chat"]["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-3)
    assert tr["post_sae"]["post_model"]["chat"]["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-3)
    assert tr["base_sae"]["post_model"]["chat"]["ce_loss_recovered"] < 0.99
    assert tr["deltas"]["base_sae"]["plain"]["fve_other_minus_own"] == pytest.approx(fve - 1, abs=1e-4)
    # FVE intervals over rows, and the paired difference: the base SAE loses on the post model in every row, the
    # post SAE on the base model; transfer_rows.jsonl recomputes every FVE
    assert m["fve_interval"]["n"] == len(prow.tokens) == len(m["per_row"]["sse"])
    assert m["fve_interval"]["lo"] <= m["fraction_variance_explained"] <= m["fve_interval"]["hi"]
    for set_k in ("plain", "chat"):
        down = tr["fve_post_minus_base"]["base_sae"][set_k]
        up = tr["fve_post_minus_base"]["post_sae"][set_k]
        assert down["estimate"]["hi"] < 0 < up["estimate"]["lo"]
        assert down["verdict"] == up["verdict"] == "distinguishable from the null"
        assert down["estimate"]["value"] == pytest.approx(
            tr["deltas"]["base_sae"][set_k]["fve_other_minus_own"], rel=1e-5
        )
    lines = [json.loads(x) for x in (tmp_path / "transfer_rows.jsonl").read_text().splitlines()]
    for sk, mk, set_k in [("base_sae", "post_model", "plain"), ("post_sae", "base_model", "chat")]:
        mine = [x for x in lines if (x["sae"], x["model"], x["texts"]) == (sk, mk, set_k)]
        assert [x["row"] for x in mine] == list(range(res["texts"][set_k]["rows"]))
        again = 1 - sum(x["sse"] for x in mine) / sum(x["sst"] for x in mine)
        assert again == pytest.approx(tr[sk][mk][set_k]["fraction_variance_explained"], rel=1e-6)
        assert sum(x["n_tokens"] for x in mine) == tr[sk][mk][set_k]["n_tokens"]
    assert {x["model"] for x in lines if x["sae"] == "base_sae"} == {"base_model", "post_model", "random_lora_null"}
    # 2. matching: the 8 rotated latents are new, the rest reused exactly; random baselines reuse nothing
    moved = sorted([*range(ROT), *range(LIVE, LIVE + ROT)])
    mt = res["matching"]
    assert mt["fraction_post_reused"] == pytest.approx(0.75) and sorted(mt["new_latents"]) == moved
    assert mt["baselines"]["random"]["fraction_post_reused"] < 0.2
    # 3. activation shift on Assistant tokens: the base SAE's rotated latents go silent, the post SAE's appear
    sh = res["activation_shift"]
    assert sorted(r["latent"] for r in sh["base_sae"]["down"]) == moved and sh["base_sae"]["up"] == []
    assert sorted(r["latent"] for r in sh["post_sae"]["up"]) == moved
    assert all(r["freq_post"] == 0 for r in sh["base_sae"]["down"])
    # 4. persona vectors on the same token ids: v_post = v_base R, so the post SAE ranks v_post as the base SAE v_base
    ev = res["persona"]["traits"]["evil"]
    assert ev["norm_base"] == pytest.approx(ev["norm_post"], rel=1e-4)
    assert ev["top_features_post_sae"]["post_vector"] == ev["top_features_base_sae"]["base_vector"]
    # outputs: summary, figures with informative titles, cards for the new / shifted latents
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["command"] == "stages" and s["results"]["matching"]["n_new"] == 8
    assert {"transfer.png", "matching.png", "shift_base_sae.png", "persona_cosine.png", "cards.html"} <= set(
        s["figures"]
    )
    assert all((tmp_path / f).exists() for f in s["figures"])
    page = (tmp_path / "cards.html").read_text()
    assert "new latents of the post SAE" in page and "down-regulated" in page and "tiny-rotated" in page
    _check_typed_result(res, tmp_path)


STAGES_KEYS = [
    "hook",
    "layer",
    "sae_names",
    "texts",
    "transfer",
    "matching",
    "activation_shift",
    "cards",
    "persona",
    "figures",
    "timings",
]


def _check_typed_result(res, run):
    """run_stages' StagesResult on the rotated pair (with the random-LoRA null): the dict it used to return, what
    summary.json holds, the headline numbers in HTML, a figure, tables."""
    from matplotlib.figure import Figure

    from featurescope.runs import jsonable

    assert isinstance(res, st.StagesResult) and fs.run_stages is st.run_stages
    s = json.loads((run / "summary.json").read_text())
    d = res.to_dict()
    assert list(d) == STAGES_KEYS and list(res) == STAGES_KEYS and res.get("crosscoder") is None
    # summary.json: the result less figures and timings (kept at the summary's top level), same order, as JSON
    assert json.dumps(s["results"]) == json.dumps(jsonable(res.summary_results()))
    assert list(s["results"]) == STAGES_KEYS[:-2] and s["figures"] == d["figures"] == list(res.figures or ())
    assert set(s["timings_s"]) == set(d["timings"]) and d["timings"]["total"] == res["timings"]["total"]
    assert d["transfer"] == res["transfer"] and res["layer"] == 1 and res.hook == HOOK
    back = st.StagesResult.from_summary(run)
    assert json.dumps(jsonable(back.summary_results())) == json.dumps(s["results"]) and back.figures == res.figures
    # to_dict() hands out copies
    d["matching"]["n_new"] = -1
    assert res["matching"]["n_new"] == 8
    # HTML: FVE of the base SAE on base / post / random-LoRA null, reuse vs baselines, persona cosines
    page = res._repr_html_()
    tr = res["transfer"]
    for set_k in ("plain", "chat"):
        for v in (
            tr["base_sae"]["base_model"][set_k]["fraction_variance_explained"],
            tr["base_sae"]["post_model"][set_k]["fraction_variance_explained"],
            tr["random_lora_null"][set_k]["fraction_variance_explained"],
        ):
            assert f"{v:.3f}" in page
    assert "random LoRA" in page and "no interval" in page and "interval over text rows" in page
    ci = tr["base_sae"]["post_model"]["plain"]["fve_interval"]
    assert f"[{ci['lo']:.3f}, {ci['hi']:.3f}]" in page and "post-trained minus base model (plain)" in page
    assert (
        "75.0%" in page
        and "random baseline" in page
        and f"{res['matching']['baselines']['random']['fraction_post_reused'] * 100:.1f}%" in page
    )
    ev = res["persona"]["traits"]["evil"]
    assert f"{ev['cosine_at_layer']:.3f}" in page and "persona vectors across stages" in page
    # figure: transfer, matching and persona panels; nothing written
    before = sorted(p.name for p in run.iterdir())
    fig = res.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert isinstance(res.plot(part="persona"), Figure) and sorted(p.name for p in run.iterdir()) == before
    pytest.importorskip("pandas")
    df = res.to_frame()
    assert list(df.columns) == [
        "sae",
        "activations_of",
        "texts",
        "fve",
        "ce_loss_recovered",
        "l0",
        "dead_fraction",
        "n_tokens",
        "fve_lo",
        "fve_hi",
    ]
    assert len(df) == 2 * 2 * 2 + 2  # SAE x model x text set, and the null on both sets
    null = df[df["activations_of"] == "random_lora_null"]
    assert set(null["texts"]) == {"plain", "chat"} and set(null["sae"]) == {"base_sae"}
    m = res.to_frame("matching")
    assert list(m["dictionary"]) == ["post SAE -> base SAE", "random baseline", "rotated baseline"]
    assert m["fraction_post_reused"].iloc[0] == pytest.approx(0.75)
    p = res.to_frame("persona")
    assert list(p.columns) == ["trait", "layer", "cosine", "chosen"] and list(p["chosen"]).count(True) == 1
    sh = res.to_frame("shift")
    assert sorted(sh[(sh["sae"] == "base_sae") & (sh["direction"] == "down")]["latent"]) == sorted(
        [*range(ROT), *range(LIVE, LIVE + ROT)]
    )


def test_stage_mismatch_errors(planted, char_tok):
    wide = fs.from_hooked_transformer(make_tiny_tl(char_tok, n_layers=2, d_model=40), name="wide", tokenizer=char_tok)
    with pytest.raises(st.StageMismatchError, match="d_model"):
        st.check_pair(planted["base"], wide, HOOK)
    with pytest.raises(fs.FeaturescopeError, match="out of range"):
        st.check_pair(planted["base"], planted["post"], "blocks.7.hook_resid_post")


def test_cli_stages_matching_on_saved_saes(tiny_hf_folder, tmp_path, capsys):
    from featurescope.cli import main

    E = torch.eye(D)
    signed_basis_sae(E[:LIVE], "tiny", hook="blocks.1.hook_resid_post").save_model(tmp_path / "base_sae")
    signed_basis_sae(E[:LIVE] @ plane_rotation(), "tiny", hook="blocks.1.hook_resid_post").save_model(
        tmp_path / "post_sae"
    )
    out = tmp_path / "run"
    rc = main(
        [
            "stages",
            "--base",
            str(tiny_hf_folder),
            "--post",
            str(tiny_hf_folder),
            "--base-sae",
            str(tmp_path / "base_sae"),
            "--post-sae",
            str(tmp_path / "post_sae"),
            "--layer",
            "1",
            "--out",
            str(out),
            "--parts",
            "matching,crosscoder",
            "--cards",
            "0",
            "--quiet",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "post latents reused (best cos >= 0.7): 75.0%" in printed
    s = json.loads((out / "summary.json").read_text())
    assert s["inputs"]["hook"] == "blocks.1.hook_resid_post" and s["results"]["matching"]["n_new"] == 8
    assert "featurescope crosscoder train" in s["results"]["crosscoder"]["training"]
    assert (
        main(
            [
                "stages",
                "--base",
                str(tiny_hf_folder),
                "--post",
                str(tiny_hf_folder),
                "--base-sae",
                str(tmp_path / "base_sae"),
                "--post-sae",
                str(tmp_path / "nope"),
                "--out",
                str(out),
            ]
        )
        == 2
    )


# ---------------------------------------------------------------------------------------------------------------
# integration: the pipeline on the real offline Gemma 3 270M (identical pair, small synthetic SAEs)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_real_gemma_identical_pair_generates_formats_and_reuses_everything(tmp_path):
    from featurescope.posttrain import GEMMA_CHAT_TEMPLATE

    gemma = fs.load_model("offline:gemma-3-270m")
    tok = gemma.tokenizer
    had = getattr(tok, "chat_template", None)
    tok.chat_template = had or GEMMA_CHAT_TEMPLATE
    try:
        import dataclasses as dc

        # the same weights, labelled post-trained, with Gemma's chat template
        chat = fs.Model(
            gemma.tl, tok, dc.replace(gemma.info, stage="post-trained", has_chat_template=True, name="gemma-as-chat")
        )
        hook = gemma.resid_hook(6)
        g = torch.Generator().manual_seed(0)
        W = torch.nn.functional.normalize(torch.randn(256, gemma.d_model, generator=g), dim=-1)
        sae = signed_basis_sae(W[:128], gemma.name, hook=hook)  # 256 latents, a crude but fixed dictionary
        text = (
            "Sparse autoencoders decompose activations into features. The Python tutorial explains lists, "
            "dictionaries and loops. A fortune: you will meet a tall, dark stranger. "
        ) * 6
        ids = tok(text, add_special_tokens=False)["input_ids"]
        rows = st.TokenRows(
            torch.tensor([[tok.bos_token_id] + ids[i * 40 : i * 40 + 63] for i in range(3)]),
            torch.zeros(3, 64, dtype=torch.long),
            "fixed text",
        )
        cfg = st.StagesConfig(
            context=64,
            ce_rows=2,
            ce_batch=2,
            chat_dialogues=3,
            max_new_tokens=12,
            n_cards=2,
            card_plain_rows=1,
            parts=("transfer", "matching", "shift"),
            outlier_quantile=0.0,
        )
        res = st.run_stages(gemma, chat, sae, sae, hook, tmp_path, config=cfg, plain_rows=rows, progress=False)
    finally:
        tok.chat_template = had
    resp = [json.loads(x) for x in (tmp_path / "responses.jsonl").read_text().splitlines()]
    assert len(resp) == 3 and all(r["response"] for r in resp)  # the held-out prompts were answered
    assert res["texts"]["chat"]["assistant_tokens"] > 0 and "chat template" in res["texts"]["chat"]["description"]
    tr = res["transfer"]["base_sae"]
    for set_k in ("plain", "chat"):
        a, b = tr["base_model"][set_k], tr["post_model"][set_k]
        assert a["fraction_variance_explained"] == pytest.approx(b["fraction_variance_explained"], abs=1e-6)
        assert a["ce_clean"] == pytest.approx(b["ce_clean"], abs=1e-5) and 0 < a["ce_clean"] < 12
        assert a["ce_zero_ablation"] > a["ce_clean"]
    assert res["matching"]["fraction_post_reused"] == 1.0
    assert res["activation_shift"]["base_sae"]["up"] == [] and res["activation_shift"]["base_sae"]["down"] == []
    assert res["timings"]["total"] < 120


def test_seed_control_sets_the_reuse_ceiling():
    """A control dictionary sharing half the base latents caps reuse at 50%; a post dictionary sharing a quarter then
    reuses 0.5 of what the ceiling allows."""
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(64, D, generator=g), dim=-1)
    fresh = torch.nn.functional.normalize(torch.randn(64, D, generator=g), dim=-1)
    fresh2 = torch.nn.functional.normalize(torch.randn(48, D, generator=g), dim=-1)
    control = torch.cat([base[:32], fresh[:32]])
    post = torch.cat([base[32:48], fresh2])
    rep, _, lines = st.matching_report(post, base, threshold=0.7, seed=0, control_W=control)
    assert rep["baselines"]["seed"]["fraction_post_reused"] == pytest.approx(0.5)
    assert rep["fraction_post_reused"] == pytest.approx(0.25)
    assert rep["fraction_post_reused_relative_to_seed_ceiling"] == pytest.approx(0.5)
    assert "seed" in lines and "BASE model" in rep["baselines"]["seed"]["what"]
    with pytest.raises(st.StagesError, match="control dictionary width"):
        st.matching_report(post, base, control_W=torch.randn(8, D + 1))


def test_random_lora_matches_the_weight_change_module_by_module(tmp_path):
    import json as _json

    from safetensors.torch import load_file, save_file

    from featurescope.stages.random_lora import delta_norms, random_lora_like

    g = torch.Generator().manual_seed(0)
    t = {
        "m.layers.0.q_proj.lora_A.weight": torch.randn(4, 16, generator=g),
        "m.layers.0.q_proj.lora_B.weight": torch.randn(8, 4, generator=g) * 0.1,
        "m.layers.0.o_proj.lora_A.weight": torch.randn(4, 8, generator=g),
        "m.layers.0.o_proj.lora_B.weight": torch.randn(16, 4, generator=g) * 0.01,
        "m.embed_tokens.token_adapter.trainable_tokens_delta": torch.randn(2, 16, generator=g),
    }
    src = tmp_path / "a"
    src.mkdir()
    save_file(t, str(src / "adapter_model.safetensors"))
    (src / "adapter_config.json").write_text(_json.dumps({"r": 4, "lora_alpha": 8}))
    dst = random_lora_like(src, tmp_path / "r", seed=1)
    r = load_file(str(dst / "adapter_model.safetensors"))
    assert set(r) == set(t) and all(r[k].shape == t[k].shape for k in t)
    a, b = delta_norms(t), delta_norms(r)
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 * max(1.0, a[k]) for k in a)
    ba = r["m.layers.0.q_proj.lora_B.weight"] @ r["m.layers.0.q_proj.lora_A.weight"]
    bt = t["m.layers.0.q_proj.lora_B.weight"] @ t["m.layers.0.q_proj.lora_A.weight"]
    assert abs(float(torch.nn.functional.cosine_similarity(ba.flatten(), bt.flatten(), dim=0))) < 0.3  # random
    assert (dst / "adapter_config.json").read_text() == (src / "adapter_config.json").read_text()


def test_random_lora_null_over_seeds_both_ways(planted):
    """The multi-seed transfer null: random LoRAs that change nothing (the base model) leave the base SAE's FVE where
    it was, so the rotated post model's lower FVE is found; when every "random LoRA" is the post model itself the
    observed FVE sits among the draws and is not called an effect. Models are made one per seed."""
    from featurescope.stages.transfer import random_lora_null_fve

    base, post, bs = planted["base"], planted["post"], planted["base_sae"]
    rows = {"plain": plain_rows(base.tokenizer)}
    a_p, _, keep = st.capture_rows(post, rows["plain"], HOOK)
    from featurescope.saes import reconstruction_metrics

    observed = {"plain": reconstruction_metrics(bs, a_p[keep])["fraction_variance_explained"]}
    made: list[int] = []

    def same_as_base(seed: int):
        made.append(seed)
        return base

    found = random_lora_null_fve(bs, same_as_base, range(19), rows, HOOK, observed)
    ev = found["evidence"]["plain"]
    assert made == list(range(19)) and len(found["fve"]["plain"]) == 19
    assert ev["verdict"] == "distinguishable from the null" and ev["p_lower"] == pytest.approx(1 / 20)
    assert observed["plain"] < ev["null"]["lo"]
    same = random_lora_null_fve(bs, lambda seed: post, range(5), rows, HOOK, observed)
    assert same["evidence"]["plain"]["verdict"] == "not distinguishable from the null"
    assert same["evidence"]["plain"]["p_lower"] == 1.0
    # with the observed FVE's interval over rows the verdict uses it: an interval reaching into the draws is no
    # effect, the row bootstrap's own interval (the rotation loses variance in every row) still clears them
    from featurescope.stages.transfer import fve_bootstrap, per_row_reconstruction
    from featurescope.stats import Estimate

    o = observed["plain"]
    wide = random_lora_null_fve(
        bs, lambda seed: base, range(5), rows, HOOK, observed, observed_intervals={"plain": Estimate(o, o, 1.0, 6)}
    )
    assert wide["evidence"]["plain"]["verdict"] == "not distinguishable from the null"
    assert wide["evidence"]["plain"]["estimate"]["hi"] == 1.0 and wide["evidence"]["plain"]["p_lower"] == 1 / 6
    pr = per_row_reconstruction(bs, a_p, keep, len(rows["plain"].tokens))
    est = fve_bootstrap(pr["sse"], pr["sst"])
    real = random_lora_null_fve(
        bs, lambda seed: base, range(5), rows, HOOK, observed, observed_intervals={"plain": est}
    )
    assert real["evidence"]["plain"]["estimate"] == est.to_dict() and est.hi < real["evidence"]["plain"]["null"]["lo"]
    assert real["evidence"]["plain"]["verdict"] == "distinguishable from the null"
