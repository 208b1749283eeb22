"""The Assistant axis: role data, the pure core on planted data, and the model-driving parts on tiny models."""

import json

import numpy as np
import pytest
import torch

import featurescope as fs
from featurescope import axis as A
from featurescope.errors import DataError, FeaturescopeError
from featurescope.evidence.nulls import EFFECT
from featurescope.stats import NOT_DISTINGUISHABLE
from tests.conftest import make_tiny_tl


# ----------------------------------------------------------------------------------------------------------------
# Role library
# ----------------------------------------------------------------------------------------------------------------
def test_shipped_library_meets_the_issue_minimums():
    lib = A.load_role_library()
    assert len(lib.roles) >= 120 and len(lib.questions) >= 40
    assert all(len(r.instructions) == 5 and len(set(r.instructions)) == 5 for r in lib.roles)
    assert len(set(lib.names)) == len(lib.names)
    assert lib.default_prompts[0] == "" and any("helpful assistant" in p for p in lib.default_prompts)
    assert set(lib.category_counts()) <= set(A.CATEGORIES)
    assert len(lib.scripts) == 5 and all(len(s.user_turns) >= 8 for s in lib.scripts)
    assert len(lib.identity_questions) >= 8 and "assistant" in lib.ai_terms
    assert len(lib.prefills) >= 10 and "teacher" in lib.helpful_archetypes and "dragon" in lib.fantastical_archetypes


def test_user_roles_are_merged_and_validated(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text(
        "roles:\n  - name: beekeeper\n    category: profession\n    instructions:\n"
        + "".join(f"      - 'You are a beekeeper, version {i}.'\n" for i in range(5))
        + "questions:\n  - 'What is the best thing about honey?'\n"
    )
    lib = A.load_role_library(good)
    base = A.load_role_library()
    assert lib.role("beekeeper").category == "profession" and len(lib.roles) == len(base.roles) + 1
    assert len(lib.questions) == len(base.questions) + 1 and str(good) in lib.sources
    dup = tmp_path / "dup.yaml"
    dup.write_text(good.read_text().replace("beekeeper", "teacher").split("questions:")[0])
    with pytest.raises(DataError, match="'teacher' is defined twice"):
        A.load_role_library(dup)
    four = tmp_path / "four.yaml"
    four.write_text(good.read_text().split("questions:")[0].replace("      - 'You are a beekeeper, version 4.'\n", ""))
    with pytest.raises(DataError, match=r"four.yaml: role 'beekeeper'.*exactly 5"):
        A.load_role_library(four)
    cat = tmp_path / "cat.yaml"
    cat.write_text(good.read_text().split("questions:")[0].replace("profession", "profesion"))
    with pytest.raises(DataError, match="Did you mean: profession"):
        A.load_role_library(cat)
    with pytest.raises(DataError, match="179 roles; at least 500 are needed"):
        A.load_role_library(min_roles=500)


def test_jobs_spread_over_categories_and_cycle_instructions():
    lib = A.load_role_library()
    cfg = A.AxisConfig(n_roles=11, n_questions=6)
    jobs = A.build_jobs(lib, cfg)
    roles = [j for j in jobs if j.condition == "role"]
    defaults = [j for j in jobs if j.condition == "default"]
    assert len(defaults) == 5 * 6 and len(roles) == 11 * 6
    assert len({j.category for j in roles}) == 11  # one role of each category
    for r in {j.role for j in roles}:  # every role's 6 questions use all 5 of its prompts
        assert {j.instruction_index for j in roles if j.role == r} == set(range(5))
    assert [m.role for m in defaults[0].messages()] == ["user"]  # "" = no system prompt
    assert [m.role for m in roles[0].messages()] == ["system", "user"]
    qs = lib.select_questions(6)
    assert qs[0] == lib.questions[0] and len(set(qs)) == 6 and qs[-1] in lib.questions[-len(lib.questions) // 6 :]
    assert len(A.build_jobs(lib, A.AxisConfig(n_roles=2, n_questions=3, instructions="all"))) == 5 * 3 + 2 * 3 * 5
    assert A.build_jobs(lib, cfg) == jobs  # deterministic


# ----------------------------------------------------------------------------------------------------------------
# Text measures
# ----------------------------------------------------------------------------------------------------------------
def test_identifies_as_ai_and_completion_classes():
    assert A.identifies_as_ai("I am an AI assistant created to help.")
    assert A.identifies_as_ai("As a large language model, I can't.")
    assert not A.identifies_as_ai("I'm not an AI, I am a pirate of the seven seas.")
    assert not A.identifies_as_ai("I said: no assistant will ever sail with me.")
    assert not A.identifies_as_ai("The rain in Spain stays mainly in the plain.")  # 'ai' inside words
    assert A.classify_completion("teacher at a small school", ["teacher"], ["dragon"]) == "helpful"
    assert A.classify_completion("dragon who guards gold", ["teacher"], ["dragon"]) == "fantastical"
    assert A.classify_completion("teachers' union rep", ["teacher"], ["dragon"]) == "other"  # whole words only
    assert A.classify_completion("teacher and a dragon", ["teacher"], ["dragon"]) == "both"


class BagOfWords:
    """A fake sentence embedder over a tiny vocabulary (for the role judge)."""

    VOCAB = ["pirate", "ship", "sea", "ai", "assistant", "help", "language", "model", "questions", "experiences"]
    name = "bag-of-words"

    def embed(self, texts):
        out = torch.zeros(len(texts), len(self.VOCAB)) + 0.01
        for i, t in enumerate(texts):
            for w in t.lower().replace(",", " ").replace(".", " ").split():
                if w in self.VOCAB:
                    out[i, self.VOCAB.index(w)] += 1
        return torch.nn.functional.normalize(out, dim=-1)


def test_offline_role_judge_scores_follow_its_definition():
    j = A.EmbeddingRoleJudge(BagOfWords())
    job = A.Job("role", "pirate", "historical", 0, "You are a pirate on a ship at sea.", 0, "Who are you?")
    answers = [
        "Arr, I sail my pirate ship on the wild sea, a pirate born and bred.",
        "I am an AI, but today I am a pirate on my pirate ship at sea, sailing the sea.",
        "As an AI language model I help with questions.",
        "",
        "I can't play a pirate, sorry.",
    ]
    assert j.score_roles([job] * len(answers), answers) == [3, 2, 1, 0, 0]
    assert A.KeepAllJudge().score_roles([job, job], ["x", " "]) == [3, 0]
    assert isinstance(A.role_judge("none"), A.KeepAllJudge)
    with pytest.raises(FeaturescopeError, match="unknown role judge"):
        A.role_judge("nope")


def test_keep_mask_falls_back_per_role():
    jobs = [A.Job("default", "default", "default", 0, "", 0, "q")] + [
        A.Job("role", r, "profession", 0, "p", i, "q") for r in ("a", "b") for i in range(3)
    ]
    scores = [3, 3, 3, 1, 2, 2, 0]
    keep, used = A.keep_mask(jobs, scores, [True] * 7, min_score=3, min_kept=2)
    assert used == {"a": 3, "b": 2} and keep.tolist() == [True, True, True, False, True, True, False]
    keep, used = A.keep_mask(jobs, scores, [True] * 7, min_score=3, min_kept=3)  # b: not 3 at >= 2 -> all usable
    assert used == {"a": -1, "b": -1} and keep.tolist() == [True] * 7
    keep, used = A.keep_mask(jobs, scores, [True, True, True, True, False, False, True], min_score=3, min_kept=3)
    # a: only 2 of its 3 usable rows score >= 3 -> falls back to all usable; b: one usable row -> kept
    assert used == {"a": -1, "b": 3} or used["a"] == -1
    assert keep.tolist() == [True, True, True, True, False, False, True]


# ----------------------------------------------------------------------------------------------------------------
# Pure core on planted data
# ----------------------------------------------------------------------------------------------------------------
def _planted(n_roles=30, d=16, n_layers=3, seed=0):
    """Role vectors = mean + s_r u + small noise; default = mean + 3 u: the dominant direction is u."""
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    mu = torch.randn(d, generator=g) * 3
    s = torch.linspace(-2, 2, n_roles)
    rv = mu + s[:, None] * u + 0.05 * torch.randn(n_roles, d, generator=g)
    role_acts = rv[:, None, :].expand(n_roles, n_layers, d).clone()
    default = (mu + 3 * u)[None, None, :].expand(4, n_layers, d) + 0.01 * torch.randn(4, n_layers, d, generator=g)
    return u, s, role_acts, default


def test_planted_direction_is_recovered_by_pca_and_the_axis():
    u, s, role_acts, default = _planted()
    names = [f"role{i}" for i in range(len(s))]
    ax = A.AssistantAxis.from_activations(
        role_acts,
        torch.arange(len(s)),
        default,
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(3)],
        role_names=names,
        role_categories=["profession"] * len(s),
        model="planted",
        stage="post-trained",
    )
    p = ax.pca(1)
    assert float(A.cosine(p.components[0], u)) > 0.99  # oriented along the axis, so the sign is fixed too
    assert float(p.explained[0]) > 0.95 and p.n_for(0.7) == 1
    # axis = default - mean(roles) = (mu + 3u) - (mu + mean(s) u) = 3u, since s is centred
    assert float(A.cosine(ax.at(1), u)) > 0.99 and float(ax.at(1).norm()) == pytest.approx(3.0, abs=0.1)
    a = ax.analysis(1)
    assert a["axis_pc1_cosine"] > 0.99 and a["default_pc1_percentile"] == 1.0 and a["pcs_for_70pct"] == 1
    assert [r[0] for r in ax.ranked_roles(1)[:3]] == ["role29", "role28", "role27"]
    assert ax.role_counts.tolist() == [1] * len(s)
    pl = ax.per_layer()
    assert len(pl["axis_pc1_cosine"]) == 3 and min(pl["axis_pc1_cosine"]) > 0.99


def test_group_means_pca_and_small_helpers():
    acts = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]], [[0.0, 5.0]], [[9.0, 9.0]]])
    m, c = A.group_means(acts, torch.tensor([0, 0, 1, 1]), 3, keep=torch.tensor([True, True, True, False]))
    assert m[:, 0].tolist() == [[2.0, 0.0], [0.0, 5.0], [0.0, 0.0]] and c.tolist() == [2, 1, 0]
    assert A.axis_from_means(torch.tensor([[1.0, 1.0]]), m[:2]).tolist() == [[0.0, -1.5]]
    assert A.n_components_for(torch.tensor([0.5, 0.15, 0.1, 0.25]), 0.7) == 3
    assert A.percentile_rank(5.0, torch.tensor([1.0, 2.0, 5.0, 9.0])) == pytest.approx(0.625)
    assert A.turn_spans(torch.tensor([0, 3, 3, 0, 2, 3, 0, 3])) == [(1, 3), (5, 6), (7, 8)]
    assert A.default_cap_layers(18) == [9, 10, 11, 12, 13] and A.default_cap_layers(30) == list(range(15, 23))
    x = torch.randn(6, 8)
    p = A.pca(x, orient=torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]))
    assert p.components.shape == (5, 8) and float(p.components[0, 0]) >= 0
    torch.testing.assert_close(p.scores @ p.components + p.mean, x, atol=1e-4, rtol=0)  # 5 PCs span 6 centred rows
    assert float(p.explained.sum()) == pytest.approx(1.0, abs=1e-5)


def test_capping_floors_the_projection_and_keeps_the_orthogonal_part():
    v = torch.nn.functional.normalize(torch.tensor([1.0, 2.0, -1.0, 0.5]), dim=0)
    h = torch.randn(3, 7, 4) * 4
    out = A.cap_activations(h, v, tau=0.5)
    proj_in, proj_out = h @ v, out @ v
    # sign convention: the axis points toward the Assistant; a projection below tau (drift away) is lifted to tau
    assert torch.allclose(proj_out, proj_in.clamp(min=0.5), atol=1e-5)
    assert torch.allclose(out - proj_out[..., None] * v, h - proj_in[..., None] * v, atol=1e-5)
    assert torch.equal(out[proj_in >= 0.5], h[proj_in >= 0.5])  # untouched above tau
    skip = torch.zeros(3, 7, dtype=torch.bool)
    skip[:, 0] = True
    out2 = A.cap_activations(h, v, 0.5, skip)
    assert torch.equal(out2[:, 0], h[:, 0])
    big = torch.ones(1, 5, 4)
    big[0, 0] *= 1000
    assert A.outlier_positions(big, 10.0).tolist() == [[True, False, False, False, False]]


def test_axis_save_load_roundtrip_and_html(tmp_path):
    u, s, role_acts, default = _planted(n_roles=6)
    ax = A.AssistantAxis.from_activations(
        role_acts,
        torch.arange(6),
        default,
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(3)],
        role_names=[f"r{i}" for i in range(6)],
        role_categories=["mythical"] * 6,
        model="planted",
        stage="base",
        extra={"judge": "none"},
    )
    ax.token_quantiles = torch.linspace(-1, 1, 101).expand(3, 101).clone()
    path = ax.save(tmp_path / "ax")
    assert path.name == "axis.safetensors" and path.with_suffix(".json").exists()
    back = A.AssistantAxis.load(tmp_path / "ax")
    torch.testing.assert_close(back.vectors, ax.vectors)
    torch.testing.assert_close(back.role_vectors, ax.role_vectors)
    assert back.role_names == ax.role_names and back.stage == "base" and back.extra == {"judge": "none"}
    assert back.tau(1, 25) == pytest.approx(-0.5) and back.tau(1, 50) == pytest.approx(0.0, abs=1e-6)
    assert back.tau(1, 25, "responses") == pytest.approx(float(torch.quantile(ax.default_projections[:, 1], 0.25)))
    h = back._repr_html_()
    assert "planted" in h and "cos(axis, PC1)" in h and "blocks.2.hook_resid_post" in h
    with pytest.raises(FeaturescopeError, match="not an Assistant-axis file"):
        fs.PersonaVector(
            trait="t", vectors=torch.zeros(1, 4), hooks=["h"], kind="k", model="m", stage="base", n_pos=1, n_neg=1
        ).save(tmp_path / "pv.safetensors")
        A.AssistantAxis.load(tmp_path / "pv.safetensors")
    with pytest.raises(FeaturescopeError, match="no layer 7"):
        back.at(7)


def test_compare_axes_known_answers():
    u, s, role_acts, default = _planted()
    kw = dict(
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(3)],
        role_names=[f"r{i}" for i in range(len(s))],
        role_categories=["profession"] * len(s),
    )
    a = A.AssistantAxis.from_activations(role_acts, torch.arange(len(s)), default, model="base", stage="base", **kw)
    same = A.compare_axes(a, a)
    assert same["axis_cosine"] == pytest.approx([1.0] * 3, abs=1e-5)
    assert same["middle"]["pc_cosines"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)
    assert same["post_default_on_base_axis"] == pytest.approx([1.0] * 3, abs=1e-5)
    assert same["post_default_percentile_on_base"] == [1.0] * 3
    # a post-trained model whose default Assistant sits at the base roles' mean: position 0 on the base axis
    roles_mean = role_acts.mean(0)
    b = A.AssistantAxis.from_activations(
        role_acts, torch.arange(len(s)), roles_mean[None] - 0.5 * u, model="post", stage="post-trained", **kw
    )
    c = A.compare_axes(a, b)
    assert c["post_default_on_base_axis"][1] == pytest.approx(-0.5 / 3, abs=0.02)
    assert c["axis_cosine"][1] < -0.99  # b's "default" sits below its roles: its axis points the other way
    with pytest.raises(FeaturescopeError, match="different shapes"):
        A.compare_axes(
            a,
            A.AssistantAxis.from_activations(
                role_acts[..., :8], torch.arange(len(s)), default[..., :8], model="x", stage="base", **kw
            ),
        )


# ----------------------------------------------------------------------------------------------------------------
# On tiny models
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(char_tok):
    """A tiny chat model whose '!' embedding carries a known unit direction u (the planted Assistant direction)."""
    tl = make_tiny_tl(char_tok, seed=5, n_ctx=2048)
    g = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(32, generator=g), dim=0)
    with torch.no_grad():
        tl.W_E[char_tok.convert_tokens_to_ids("!")] += 50 * u
    return fs.from_hooked_transformer(tl, name="planted", stage="post-trained", tokenizer=char_tok), u


def _tiny_library(n_roles=8):
    cats = list(A.CATEGORIES)
    roles = tuple(
        A.Role(f"role{i}", cats[i % len(cats)], tuple(f"Be role {i}, take {k}." for k in range(5)))
        for i in range(n_roles)
    )
    return A.RoleLibrary(
        roles=roles,
        default_prompts=("", "Be helpful."),
        questions=("Who?", "Why?", "How?"),
        prefills=("I am a", "Q: who?\nA: I'm a"),
        helpful_archetypes=("teacher",),
        fantastical_archetypes=("dragon",),
        identity_questions=("Who are you?", "What are you?"),
        scripts=(
            A.DriftScript("s1", "coding", "d", "low", ("Hi?", "More?", "Again?")),
            A.DriftScript("s2", "emotional", "d", "high", ("Hey.", "And?", "So?")),
        ),
    )


def test_planted_role_direction_is_recovered_end_to_end(planted, tmp_path):
    """Role answers carry a role-dependent number of '!' (the planted direction u); the default Assistant's the most.
    Role vectors, PCA and the axis recover u, and the collection streams to an ActivationStore and resumes."""
    model, u = planted
    lib = _tiny_library()
    cfg = A.AxisConfig(n_questions=3, batch_size=8)
    jobs = A.build_jobs(lib, cfg)
    resp = []
    for j in jobs:
        k = 9 if j.condition == "default" else int(j.role[4:])
        resp.append(f"Reply {j.question_index}: " + "!" * k + "." * (9 - k))
    hooks = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"]
    ax, rows = A.collect_axis(
        model, lib, cfg, judge="none", out_dir=tmp_path, responses=resp, hooks=hooks, progress=False
    )
    assert ax.role_names == [f"role{i}" for i in range(8)] and ax.role_counts.tolist() == [3] * 8
    for h in hooks:
        assert float(A.cosine(ax.at(h), u)) > 0.95, h
        p = ax.pca(h)
        assert float(A.cosine(p.components[0], u)) > 0.95 and p.n_for(0.7) == 1
        a = ax.analysis(h)
        assert a["default_pc1_percentile"] == 1.0 and a["top_roles"][:3] == ["role7", "role6", "role5"]
    assert ax.token_quantiles is not None and ax.token_quantiles.shape == (2, 101)
    assert (tmp_path / "activations" / "response_mean" / "manifest.json").exists()
    assert len((tmp_path / "responses.jsonl").read_text().splitlines()) == len(jobs)
    # same request again: the store is complete, nothing recomputed; answers are identical
    ax2, _ = A.collect_axis(
        model, lib, cfg, judge="none", out_dir=tmp_path, responses=resp, hooks=hooks, progress=False
    )
    torch.testing.assert_close(ax2.vectors, ax.vectors)


def test_generation_cache_resumes_and_refuses_other_requests(planted, tmp_path):
    model, _ = planted
    convs = [[fs.Message("user", f"Q{i}?")] for i in range(5)]
    p = tmp_path / "gen.jsonl"
    full = A.generate_cached(model, convs, path=p, max_new_tokens=3, batch_size=2, chunk=2, progress=False)
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:3]) + "\n")  # interrupted after one chunk of 2
    again = A.generate_cached(model, convs, path=p, max_new_tokens=3, batch_size=2, chunk=2, progress=False)
    assert again == full and len(p.read_text().splitlines()) == 6
    with pytest.raises(FeaturescopeError, match="different request"):
        A.generate_cached(model, convs, path=p, max_new_tokens=4, batch_size=2, progress=False)


def test_bfloat16_generation_copy(planted, tmp_path):
    """Model.cast keeps one bf16 copy (tokenizer shared, original untouched); collect_axis generates with it,
    records the dtype in the generation cache's header, and still captures with the float32 model."""
    model, _ = planted
    b = model.cast("bfloat16")
    assert b is model.cast(torch.bfloat16) and model.cast("float32") is model
    assert b.info.dtype == "bfloat16" and next(b.tl.parameters()).dtype == torch.bfloat16
    assert next(model.tl.parameters()).dtype == torch.float32 and b.tokenizer is model.tokenizer
    lib = _tiny_library(2)
    cfg = A.AxisConfig(n_questions=2, batch_size=4, max_new_tokens=3, generation_dtype="bfloat16")
    ax, rows = A.collect_axis(
        model, lib, cfg, judge="none", out_dir=tmp_path, hooks=["blocks.0.hook_resid_post"], progress=False
    )
    header = json.loads((tmp_path / "generations.jsonl").read_text().splitlines()[0])
    assert header["request"]["dtype"] == "bfloat16" and ax.vectors.dtype == torch.float32
    assert len(rows) == len(A.build_jobs(lib, cfg))
    manifest = json.loads((tmp_path / "activations" / "response_mean" / "manifest.json").read_text())
    assert "compute_dtype" not in manifest["request"]  # float32 capture: the header older stores wrote
    # bf16 capture of the same answers: recorded in the store's request, vectors close to the float32 ones
    resp = [r["response"] for r in rows]
    cfg2 = A.AxisConfig(n_questions=2, batch_size=4, max_new_tokens=3, capture_dtype="bfloat16")
    ax2, _ = A.collect_axis(
        model,
        lib,
        cfg2,
        judge="none",
        out_dir=tmp_path / "b",
        responses=resp,
        hooks=["blocks.0.hook_resid_post"],
        progress=False,
    )
    manifest = json.loads((tmp_path / "b" / "activations" / "response_mean" / "manifest.json").read_text())
    assert manifest["request"]["compute_dtype"] == "bfloat16" and ax2.vectors.dtype == torch.float32
    assert float(A.cosine(ax2.role_vectors[:, 0], ax.role_vectors[:, 0]).min()) > 0.99


def test_token_projections_match_capture_and_turn_means(planted):
    model, u = planted
    conv = [
        fs.Message("user", "Hi!"),
        fs.Message("assistant", "Yo!!"),
        fs.Message("user", "And?"),
        fs.Message("assistant", "Done!"),
    ]
    p = fs.format_conversation(model, conv)
    hooks = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    dirs = torch.stack([u, -u])
    tp = A.token_projections(model, [p, fs.format_conversation(model, conv[:2])], dirs, hooks)
    full = fs.capture(model, [p], hooks, reduction="all", progress=False)
    for k, h in enumerate(hooks):
        torch.testing.assert_close(tp[0][:, k], full[h] @ A.unit(dirs[k]), atol=1e-4, rtol=1e-4)
    assert tp[1].shape[0] < tp[0].shape[0]
    spans = A.turn_spans(p.role_ids)
    assert len(spans) == 2 and model.tokenizer.decode(p.tokens[spans[1][0] : spans[1][1]]) == "Done!"


def test_steer_axis_cap_context_and_drift(planted):
    model, u = planted
    lib = _tiny_library(4)
    acts = torch.randn(4, 3, 32)
    ax = A.AssistantAxis.from_activations(
        acts,
        torch.arange(4),
        torch.randn(2, 3, 32) + 3 * u,
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(3)],
        role_names=[r.name for r in lib.roles],
        role_categories=[r.category for r in lib.roles],
        model="planted",
        stage="post-trained",
    )
    p = fs.format_conversation(model, "Hello there?")
    base = fs.capture(model, [p], ["blocks.1.hook_resid_post"], reduction="all", progress=False)[
        "blocks.1.hook_resid_post"
    ]
    with A.steer_axis(model, ax, 2.0, 1):
        st = fs.capture(model, [p], ["blocks.1.hook_resid_post"], reduction="all", progress=False)[
            "blocks.1.hook_resid_post"
        ]
    torch.testing.assert_close(st - base, (2.0 * ax.at(1)).expand_as(base), atol=1e-4, rtol=1e-4)
    # capping at layer 1: read at blocks.2.hook_resid_pre (= the capped blocks.1 output) - nothing below tau
    tau = float((base @ ax.unit(1)).quantile(0.6))
    with A.cap(model, ax, [1], tau=tau, skip_outliers=None) as stats:
        tp = A.token_projections(model, [p], ax.at(1)[None], ["blocks.2.hook_resid_pre"])[0][:, 0]
    assert float(tp.min()) >= tau - 1e-4 and stats.capped["blocks.1.hook_resid_post"] > 0
    assert stats.seen["blocks.1.hook_resid_post"] == len(p)
    after = A.token_projections(model, [p], ax.at(1)[None], ["blocks.2.hook_resid_pre"])[0][:, 0]
    assert float(after.min()) < tau  # hook removed on exit
    # drift: turns x scripts, projections equal a direct read of each assistant turn
    res = A.drift(model, ax, lib.scripts, layers=[1], n_turns=2, max_new_tokens=4, batch_size=2, progress=False)
    assert set(res["scripts"]) == {"s1", "s2"} and res["n_turns"] == 2
    s1 = res["scripts"]["s1"]
    assert len(s1["projection"]["blocks.1.hook_resid_post"]) == 2 and len(s1["responses"]) == 2
    conv = [fs.Message("user", "Hi?"), fs.Message("assistant", s1["responses"][0] or "...")]
    pr = fs.format_conversation(model, conv)
    a = fs.capture(model, [pr], ["blocks.1.hook_resid_post"], progress=False)["blocks.1.hook_resid_post"]
    assert s1["projection"]["blocks.1.hook_resid_post"][0] == pytest.approx(float(A.project(a[0], ax.at(1))), abs=1e-3)
    capped = A.drift(
        model,
        ax,
        lib.scripts,
        layers=[1],
        n_turns=2,
        max_new_tokens=4,
        batch_size=2,
        capped=True,
        cap_layers=[1, 2],
        progress=False,
    )
    assert capped["capped"] and capped["cap_layers"] == [1, 2] and 0 <= capped["cap_stats"]["fraction_capped"] <= 1
    # several sampled conversations per script: the mean per turn, a bootstrap interval, each conversation kept
    multi = A.drift(
        model, ax, lib.scripts, layers=[1], n_turns=2, max_new_tokens=4, batch_size=4, n_conversations=3, progress=False
    )
    m1 = multi["scripts"]["s1"]
    h = "blocks.1.hook_resid_post"
    assert m1["n_conversations"] == 3 and len(m1["replicates"]) == 3
    reps = [r[h] for r in m1["replicates"]]
    assert m1["projection"][h] == pytest.approx([sum(r[t] for r in reps) / 3 for t in range(2)])
    assert all(lo <= mu <= hi for lo, mu, hi in zip(m1["ci"][h]["lo"], m1["ci"][h]["mean"], m1["ci"][h]["hi"]))
    assert m1["change_evidence"]["n"] == 3
    assert len({tuple(r) for r in reps}) > 1  # sampled: the conversations differ
    # the drift null: random directions read on the same conversations, the axis' change as the estimate
    cn = m1["change_null"]
    assert cn["null"]["n"] == A.DRIFT_NULL_DIRECTIONS and cn["estimate"]["n"] == 3
    assert cn["estimate"]["value"] == pytest.approx(sum(r[-1] - r[0] for r in reps) / 3, abs=1e-4)
    assert cn["verdict"] in ("distinguishable from the null", "not distinguishable from the null")
    assert multi["null_directions"]["n_directions"] == A.DRIFT_NULL_DIRECTIONS
    none = A.drift(model, ax, lib.scripts, layers=[1], n_turns=2, max_new_tokens=4, n_random=0, progress=False)
    assert "change_null" not in none["scripts"]["s1"] and "null_directions" not in none
    # the typed result a notebook gets: a table with intervals, nulls and verdicts, a Figure, a frame, the same dict
    section = A.drift_section(ax, h, {"uncapped": multi, "capped": capped}, 25.0)
    dr = A.DriftResult.from_section(section)
    assert dr.to_dict() == {"drift": section} and dr["drift"]["hook"] == h
    assert {(s.run, s.script) for s in dr.scripts} == {(r, n) for r in ("uncapped", "capped") for n in ("s1", "s2")}
    page = dr._repr_html_()
    assert "random directions" in page and "3 conversation(s)" in page and "distinguishable from the null" in page
    assert dr.by_run("uncapped")[0].change.estimate.n == 3
    from matplotlib.figure import Figure

    assert isinstance(dr.plot(), Figure)
    df = dr.to_frame()
    assert len(df) == 4 * 2 and {"run", "script", "turn", "projection", "change", "null_lo", "verdict"} <= set(
        df.columns
    )


def _axis_with_massive_dim() -> A.AssistantAxis:
    """A 32-dim axis whose default mean (and so the axis) leans on dimension 3, like Gemma's massive dims."""
    g = torch.Generator().manual_seed(0)
    roles = torch.randn(8, 3, 32, generator=g)
    default = torch.randn(4, 3, 32, generator=g)
    default[..., 3] += 200.0
    return A.AssistantAxis.from_activations(
        roles,
        torch.arange(8) % 4,
        default,
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(3)],
        role_names=[f"r{i}" for i in range(4)],
        role_categories=["c"] * 4,
    )


def test_drift_null_both_ways():
    """Noise on the axis and on the random directions alike is not called drift (at about the nominal rate over
    seeds); a planted drift along the axis alone is found."""
    calls = []
    for seed in range(40):
        g = np.random.default_rng(seed)
        ev = A.drift_change_evidence("noise", g.normal(0, 1, 5), g.normal(0, 1, (5, 20)), seed=seed)
        calls.append(ev["verdict"] == "distinguishable from the null")
    assert sum(calls) <= 6  # a 95% interval against a 95% null band: rarely both exclude each other
    g = np.random.default_rng(0)
    ev = A.drift_change_evidence("planted", g.normal(-5, 1, 5), g.normal(0, 1, (5, 20)))
    assert ev["verdict"] == "distinguishable from the null" and ev["estimate"]["hi"] < ev["null"]["lo"]
    dirs, dims, share = A.drift_null_directions(_axis_with_massive_dim(), "blocks.1.hook_resid_post", 8)
    assert dirs.shape == (8, 32) and dims == [3]
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(8), atol=1e-5)
    assert (dirs[:, 3] ** 2).mean() == pytest.approx(share, abs=1e-5)


def test_steering_sweep_and_prefill_test_structure(planted, tiny_base):
    model, u = planted
    lib = _tiny_library(4)
    ax = A.AssistantAxis.from_activations(
        torch.randn(4, 3, 32),
        torch.arange(4),
        torch.randn(2, 3, 32),
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(3)],
        role_names=[r.name for r in lib.roles],
        role_categories=[r.category for r in lib.roles],
        model="planted",
        stage="post-trained",
    )
    sw = A.axis_steering_sweep(
        model,
        ax,
        layer=1,
        alphas=(-1.0, 0.0, 1.0),
        questions=lib.identity_questions,
        system_prompts=(None, "Be a dragon."),
        max_new_tokens=3,
        progress=False,
    )
    assert [(r["system_prompt"], r["alpha"]) for r in sw["rows"]] == [
        ("", -1.0),
        ("", 0.0),
        ("", 1.0),
        ("Be a dragon.", -1.0),
        ("Be a dragon.", 0.0),
        ("Be a dragon.", 1.0),
    ]
    assert all(0 <= r["ai_fraction"] <= 1 and len(r["responses"]) == 2 for r in sw["rows"])
    sws = A.axis_steering_sweep(
        model,
        ax,
        layer=1,
        alphas=(-1.0, 0.0),
        questions=lib.identity_questions,
        max_new_tokens=3,
        seeds=(0, 1, 2),
        progress=False,
    )
    r0 = sws["rows"][0]
    assert sws["seeds"] == [0, 1, 2] and len(r0["per_seed"]) == 3 and len(r0["responses"]) == 3 * 2
    assert len(r0["ai_scores"]) == 2 and r0["ai_ci"]["lo"] <= r0["ai_fraction"] <= r0["ai_ci"]["hi"]
    ctl = A.axis_steering_control(model, ax, sws, n_random=1, max_new_tokens=3, progress=False)
    assert len(ctl["controls"]) == 1 and ctl["evidence"]["verdict"] in (EFFECT, NOT_DISTINGUISHABLE)
    texts = A.complete_prefills(tiny_base, ["I am a", "Q: who?\nA: I'm a"], max_new_tokens=5)
    assert len(texts) == 2 and all("\n" not in t for t in texts)
    pf = A.prefill_test(
        tiny_base, torch.randn(32), layer=1, alphas=(-2.0, 2.0), library=lib, max_new_tokens=4, progress=False
    )
    assert len(pf["rows"]) == 2 and all(
        abs(sum(r[f"{k}_fraction"] for k in ("helpful", "fantastical", "both", "other")) - 1) < 1e-9 for r in pf["rows"]
    )
    with pytest.raises(FeaturescopeError, match="same model"):
        A.prefill_test(
            tiny_base,
            A.AssistantAxis.from_activations(
                torch.randn(4, 3, 8),
                torch.arange(4),
                torch.randn(2, 3, 8),
                hooks=ax.hooks,
                role_names=ax.role_names,
                role_categories=ax.role_categories,
            ),
            library=lib,
        )


def test_decompose_axis_with_a_synthetic_sae():
    from tests.test_saes_decompose import make_sae

    sae = make_sae(d_in=16, d_sae=24, hook="blocks.1.hook_resid_post")
    target = (sae.W_dec[3] + sae.W_dec[7]).detach()
    u, s, role_acts, default = _planted(d=16)
    default = role_acts.mean(0, keepdim=True) + 4 * target
    ax = A.AssistantAxis.from_activations(
        role_acts,
        torch.arange(len(s)),
        default,
        hooks=[f"blocks.{i}.hook_resid_post" for i in range(3)],
        role_names=[f"r{i}" for i in range(len(s))],
        role_categories=["profession"] * len(s),
    )
    dec = A.decompose_axis(ax, sae, k=5)
    assert set(dec["cosine"].indices[:2].tolist()) == {3, 7} and dec["cosine"].k_for(0.9) == 2
    assert set(dec) == {"cosine", "encode", "attribution"}
    cmp = A.compare_decompositions(dec, dec, k=2)
    assert cmp["cosine"]["jaccard"] == 1.0
    feats = A.axis_features_across_stages(ax, ax, sae, k=2)
    assert feats["hook"] == "blocks.1.hook_resid_post" and feats["overlap"]["cosine"]["jaccard"] == 1.0
    assert [i for i, _ in feats["post"]["cosine"]["top"]] == dec["cosine"].indices[:2].tolist()


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_ctx_folder(tmp_path_factory, char_tok):
    """A tiny random Llama folder with a chat template and room for the real role prompts (character tokens)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(char_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=char_tok.bos_token_id,
        eos_token_id=char_tok.eos_token_id,
        pad_token_id=char_tok.pad_token_id,
        tie_word_embeddings=False,
    )
    d = tmp_path_factory.mktemp("tiny_llama_long")
    LlamaForCausalLM(cfg).save_pretrained(d)
    char_tok.save_pretrained(d)
    return d


def test_cli_roles_and_run_analyze_compare(long_ctx_folder, tmp_path, capsys, monkeypatch):
    from featurescope.cli import main

    assert main(["axis", "roles", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_roles"] >= 120 and info["n_questions"] >= 40 and len(info["roles"]) == info["n_roles"]
    out = tmp_path / "run"
    rc = main(
        [
            "axis",
            "run",
            "--model",
            str(long_ctx_folder),
            "--n-roles",
            "3",
            "--n-questions",
            "2",
            "--max-new-tokens",
            "3",
            "--judge",
            "none",
            "--turns",
            "2",
            "--scripts",
            "coding_help",
            "--alphas=-1,0",
            "--steer-seeds",
            "0,1",
            "--controls",
            "1",
            "--n-identity-questions",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    st = s["results"]["steering"]
    assert st["seeds"] == [0, 1] and all("ai_ci" in r for r in st["rows"])
    assert len(st["control"]["controls"]) == 1 and "verdict" in st["control"]["evidence"]
    # the typed result run_axis returns, rebuilt from what the run wrote: evidence, table, plots, frame
    res = A.AxisRunResult(A.AssistantAxis.load(out / "axis.safetensors"), s["results"])
    assert res["steering"] == st and res.to_dict()["axis"] is res.axis
    evs = res.evidence()
    assert "cos(axis, PC1)" in evs and any(k.startswith("steering effect") for k in evs)
    page = res._repr_html_()
    assert "any role as the default" in page and "random vectors" in page and "<b>drift</b>" in page
    from matplotlib.figure import Figure

    assert isinstance(res.plot(), Figure) and res.drift is not None and isinstance(res.drift.plot(), Figure)
    assert len(res.to_frame()) == len(st["rows"]) and {"alpha", "ai_fraction", "ai_lo"} <= set(res.to_frame().columns)
    assert s["command"] == "axis run" and s["results"]["counts"]["n_jobs"] == 5 * 2 + 3 * 2
    assert s["results"]["hook"] == "blocks.1.hook_resid_post" and len(s["results"]["per_layer"]["axis_norm"]) == 2
    assert {
        "explained_variance.png",
        "pc1_pc2.png",
        "axis_layers.png",
        "roles_ranked.png",
        "steering.png",
        "drift.png",
        "drift_capped.png",
    } <= set(s["figures"])
    assert all((out / f).exists() for f in s["figures"])
    assert len(s["results"]["drift"]["uncapped"]["per_script"]["coding_help"]) == 2
    assert (
        main(
            ["axis", "analyze", "--axis", str(out / "axis.safetensors"), "--layer", "0", "--out", str(tmp_path / "an")]
        )
        == 0
    )
    assert (
        json.loads((tmp_path / "an" / "summary.json").read_text())["results"]["analysis"]["hook"]
        == "blocks.0.hook_resid_post"
    )
    assert (
        main(
            [
                "axis",
                "compare",
                "--base-axis",
                str(out / "axis.safetensors"),
                "--post-axis",
                str(out / "axis.safetensors"),
                "--out",
                str(tmp_path / "cmp"),
            ]
        )
        == 0
    )
    cmp = json.loads((tmp_path / "cmp" / "summary.json").read_text())["results"]["compare"]
    assert cmp["axis_cosine"] == pytest.approx([1.0, 1.0], abs=1e-5)
    # with --sae: both axes in one SAE's features (an axis against itself shares all its top features)
    from tests.test_saes_decompose import make_sae

    make_sae(d_in=32, d_sae=40, hook="blocks.1.hook_resid_post", model_name=str(long_ctx_folder)).save_model(
        tmp_path / "sae"
    )
    assert (
        main(
            [
                "axis",
                "compare",
                "--base-axis",
                str(out / "axis.safetensors"),
                "--post-axis",
                str(out / "axis.safetensors"),
                "--sae",
                str(tmp_path / "sae"),
                "--out",
                str(tmp_path / "cmp2"),
            ]
        )
        == 0
    )
    feats = json.loads((tmp_path / "cmp2" / "summary.json").read_text())["results"]["compare"]["features"]
    assert feats["hook"] == "blocks.1.hook_resid_post" and feats["overlap"]["cosine"]["jaccard"] == 1.0
    # the axis in SAE features with cards, into a folder that does not exist yet (corpus stubbed small)
    from featurescope import corpus

    monkeypatch.setattr(corpus, "ensure_installed", lambda *a, **k: None)
    monkeypatch.setattr(corpus, "documents", lambda split="train", *a, **k: [("d1", "Hello world. " * 40)])
    dec = tmp_path / "new" / "dec"
    assert (
        main(
            [
                "axis",
                "decompose",
                "--model",
                str(long_ctx_folder),
                "--axis",
                str(out / "axis.safetensors"),
                "--sae",
                str(tmp_path / "sae"),
                "--k",
                "5",
                "--cards",
                "2",
                "--card-sequences",
                "2",
                "--out",
                str(dec),
            ]
        )
        == 0
    )
    d = json.loads((dec / "summary.json").read_text())["results"]
    assert len(d["cards"]) == 2 and (dec / "cards.html").exists()
    with pytest.raises(SystemExit) as exc:  # --model is required: an argparse error
        main(["axis", "steer", "--axis", str(out / "axis.safetensors"), "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "--model" in capsys.readouterr().err
    # the sub-commands write their part under the key `axis run` uses, and the report renders every run strictly
    common = ["--model", str(long_ctx_folder), "--axis", str(out / "axis.safetensors")]
    n = ["--max-new-tokens", "3"]
    sub = {
        "steer": [*n, "--alphas=-1,0", "--n-questions", "2", "--steer-seeds", "0,1", "--controls", "1"],
        "drift": [*n, "--turns", "2", "--scripts", "coding_help", "--conversations", "2"],
        "cap": [*n, "--turns", "2", "--scripts", "coding_help", "--conversations", "1"],
        "prefill": ["--alphas=-1,1"],  # no --max-new-tokens: axis_prefill does not take one
    }
    for action, extra in sub.items():
        assert main(["axis", action, *common, *extra, "--out", str(tmp_path / "sub" / action)]) == 0, action
    key = {"steer": "steering", "drift": "drift", "cap": "drift", "prefill": "prefill"}
    for action in sub:
        res = json.loads((tmp_path / "sub" / action / "summary.json").read_text())["results"]
        assert key[action] in res, action
    assert "capped" in json.loads((tmp_path / "sub" / "cap" / "summary.json").read_text())["results"]["drift"]
    from featurescope.report import write_report

    info = write_report([tmp_path], tmp_path / "rep" / "report.html", strict=True)
    page = (tmp_path / "rep" / "report.html").read_text()
    assert info["n_runs"] >= 9 and "renderer failed" not in page and "could not read key numbers" not in page


def _axis_parsers() -> dict:
    import argparse

    from featurescope.cli.main import build_parser

    def sub(p: argparse.ArgumentParser) -> dict:
        return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices

    return sub(sub(build_parser())["axis"])


def test_cli_axis_actions_take_only_their_own_flags(capsys):
    """`featurescope axis ACTION` (issue 20): each action is its own parser, so a flag another action uses is an
    argparse error (exit 2) instead of being silently ignored; required flags and bad values fail at parse time."""
    from featurescope.cli.main import build_parser

    p = build_parser()
    a = p.parse_args(["axis", "compare", "--base-axis", "b", "--post-axis", "p", "--out", "d"])
    assert (a.action, a.base_axis, a.post_axis, a.out, a.sae) == ("compare", "b", "p", "d", None)
    a = p.parse_args(["axis", "compare", "--base", "b", "--post", "p", "--out", "d"])  # the deprecated aliases
    assert (a.base_axis, a.post_axis) == ("b", "p")
    a = p.parse_args(
        ["axis", "steer", "--model", "m", "--axis", "x", "--out", "d", "--alphas=-1,0", "--n-questions", "0"]
    )
    assert a.alphas == [-1.0, 0.0] and a.steer_seeds == [0, 1, 2] and a.n_questions is None  # 0 = all
    model, ax, out = ["--model", "m"], ["--axis", "x"], ["--out", "d"]
    bad = {
        "prefill takes no --max-new-tokens": ["prefill", *model, *ax, *out, "--max-new-tokens", "3"],
        "analyze takes no --model": ["analyze", *ax, *out, *model],
        "compare takes no --layer": ["compare", "--base-axis", "b", "--post-axis", "p", *out, "--layer", "3"],
        "roles takes no --n-roles": ["roles", "--n-roles", "3"],
        "collect takes no --turns": ["collect", *model, *out, "--turns", "2"],
        "steer takes no --capped": ["steer", *model, *ax, *out, "--capped"],
        "--sae is required": ["decompose", *model, *ax, *out],
        "--out is required": ["collect", *model],
        "--post-axis is required": ["compare", "--base-axis", "b", *out],
        "not a number": ["steer", *model, *ax, *out, "--alphas", "1,x"],
        "no alphas": ["prefill", *model, *ax, *out, "--alphas", ""],
        "not a layer list": ["drift", *model, *ax, *out, "--cap-layers", "3,a"],
        "percentile over 100": ["cap", *model, *ax, *out, "--percentile", "120"],
        "batch of 0": ["collect", *model, *out, "--batch-size", "0"],
        "negative count": ["run", *model, *out, "--n-roles", "-1"],
    }
    for why, argv in bad.items():
        with pytest.raises(SystemExit) as e:
            p.parse_args(["axis", *argv])
        assert e.value.code == 2, why
        err = capsys.readouterr().err
        assert ("unrecognized arguments" if "takes no" in why else "error:") in err, (why, err)


def test_cli_axis_help_shows_each_default(capsys, monkeypatch):
    """`featurescope axis ACTION --help` documents every flag and shows the default of each one that has one."""
    import argparse

    from featurescope.cli import main
    from featurescope.cli.axis import ACTIONS

    monkeypatch.setenv("COLUMNS", "400")  # one line per flag: a default is never wrapped
    parsers = _axis_parsers()
    assert sorted(parsers) == sorted(ACTIONS)
    for action, parser in parsers.items():
        assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter), action
        with pytest.raises(SystemExit) as e:
            main(["axis", action, "--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
        assert flags and all(a.help for a in flags), action
        for a in flags:
            if a.default is not None and a.default is not argparse.SUPPRESS:
                assert f"(default: {a.default})" in text, (action, a.option_strings)


def _fake_sweep(real: list[float], null: list[float]):
    """A sweep whose per-question AI scores drop by ``real`` at alpha -1; random vectors drop by ``null``."""

    def rows(drop: list[float]) -> list[dict]:
        return [
            {
                "system_prompt": "",
                "alpha": -1.0,
                "ai_fraction": 0.0,
                "coherence": 1.0,
                "ai_scores": [1 - d for d in drop],
            },
            {"system_prompt": "", "alpha": 0.0, "ai_fraction": 1.0, "coherence": 1.0, "ai_scores": [1.0] * len(drop)},
        ]

    return rows(real), rows(null)


@pytest.mark.parametrize("planted_effect", [True, False])
def test_axis_steering_control_both_ways(monkeypatch, planted_effect):
    """A planted drop in AI identity (every question flips) is an effect against random vectors that change
    nothing; the same drop under random vectors too is not distinguishable."""
    import featurescope.axis.steer as S

    rng = np.random.default_rng(0)
    drop = (rng.random(16) < 0.9).astype(float).tolist()
    real_rows, null_rows = _fake_sweep(drop, [0.0] * 16 if planted_effect else drop)
    monkeypatch.setattr(S, "axis_steering_sweep", lambda *a, **k: {"rows": null_rows})
    ax = A.AssistantAxis.from_activations(
        torch.randn(4, 1, 8),
        torch.arange(4),
        torch.randn(2, 1, 8),
        hooks=["blocks.0.hook_resid_post"],
        role_names=list("abcd"),
        role_categories=["x"] * 4,
    )
    sweep = {"hook": "blocks.0.hook_resid_post", "alphas": [-1.0, 0.0], "questions": ["q"] * 16, "rows": real_rows}
    from featurescope.models import Model

    unused = Model.__new__(Model)  # never run: the sweep is monkeypatched (a Model, for the run-time type check)
    ctl = S.axis_steering_control(unused, ax, sweep, n_random=2, progress=False)
    assert ctl["evidence"]["verdict"] == (EFFECT if planted_effect else NOT_DISTINGUISHABLE)
