"""featurescope.features: paired Assistant / character contexts and the shared-latent test (planted latents found,
noise not called shared), the shipped pairs, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from featurescope.errors import DataError
from featurescope.features import chance_count, load_pairs, shared_latents, theme_z, z_crit


def _acts(n_per_theme: int = 30, latents: int = 300, planted: dict[str, list[int]] | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    themes = [t for t in ("dilemma", "threat", "withholding") for _ in range(n_per_theme)]
    a = torch.rand(len(themes), latents, generator=g).pow(4)  # sparse-ish, non-negative
    c = torch.rand(len(themes), latents, generator=g).pow(4)
    for t, js in (planted or {}).items():
        rows = [i for i, x in enumerate(themes) if x == t]
        for j in js:
            a[rows, j] += 1.0 + 0.2 * torch.rand(len(rows), generator=g)
            c[rows, j] += 1.0 + 0.2 * torch.rand(len(rows), generator=g)
    return a, c, themes


def test_planted_shared_latents_are_found_and_one_sided_ones_are_not():
    a, c, themes = _acts(planted={"threat": [7, 42], "dilemma": [100]})
    # a latent that fires on the theme for the Assistant only is not "shared"
    rows = [i for i, x in enumerate(themes) if x == "withholding"]
    a[rows, 200] += 2.0
    res = shared_latents(a, c, themes, n_perm=300)
    assert set(res["threat"].latents) == {7, 42}
    assert res["dilemma"].latents == [100]
    assert res["withholding"].latents == []
    assert all(z > res["threat"].threshold for z in res["threat"].z_assistant + res["threat"].z_character)


def test_noise_gives_no_shared_latents_and_the_chance_count_is_zero():
    a, c, themes = _acts(seed=3)
    res = shared_latents(a, c, themes, n_perm=300)
    assert sum(len(r.latents) for r in res.values()) == 0
    a, c, themes = _acts(planted={"threat": [7]}, seed=4)
    assert chance_count(a, c, themes, n_shuffles=3, n_perm=150) == [0, 0, 0]


def test_theme_z_and_threshold():
    x = torch.zeros(20, 3)
    x[:10, 1] = 1.0
    x += 0.01 * torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    z = theme_z(x, [True] * 10 + [False] * 10, n_perm=200)
    assert z[1] > 4 and abs(float(z[0])) < 3.5  # perfect separation of 10 vs 10: z = sqrt(19) at most
    assert z_crit(1) == pytest.approx(1.645, abs=1e-3) and z_crit(4096 * 3) > 4.4
    with pytest.raises(ValueError):
        theme_z(x, [True] * 20)


def test_shipped_pairs_have_three_themes_of_at_least_twenty():
    pairs = load_pairs()
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.theme] = counts.get(p.theme, 0) + 1
        assert p.assistant_conversation()[-1]["role"] == "assistant"
        assert p.character_conversation()[-1]["content"] == p.character
    assert set(counts) == {"dilemma", "withholding", "threat"} and min(counts.values()) >= 20


def test_malformed_pairs_are_refused(tmp_path):
    f = tmp_path / "pairs.jsonl"
    row = {"id": "dilemma-01", "theme": "dilemma", "user": "u", "assistant": "a", "character": "c"}
    f.write_text(json.dumps(row) + "\n" + json.dumps({**row, "id": "dilemma-02", "character": ""}) + "\n")
    with pytest.raises(DataError, match=r"pairs.jsonl:2: field 'character'"):
        load_pairs(f)
    f.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="fewer than 20 pairs"):
        load_pairs(f)


def test_run_shared_finds_a_planted_latent_end_to_end(char_tok, tmp_path):
    """A tiny model whose '!' token carries SAE latent 5: threat pairs (both members) shout, the others do not."""
    import featurescope as fs
    from featurescope.features import PairedContext, run_shared
    from tests.conftest import make_tiny_tl
    from tests.test_saes_decompose import make_sae

    sae = make_sae(model_name="planted-features")
    tl = make_tiny_tl(char_tok, seed=5)
    with torch.no_grad():
        tl.W_E[char_tok.convert_tokens_to_ids("!")] += 50 * sae.W_dec[5]
    model = fs.from_hooked_transformer(tl, name="planted-features", stage="post-trained", tokenizer=char_tok)
    pairs = []
    for t in ("dilemma", "threat", "withholding"):
        for i in range(20):
            mark = "!!!" if t == "threat" else "..."
            pairs.append(PairedContext(f"{t}-{i}", t, f"hi {i}", f"no {mark} wait {i}", f"she ran {mark} {i}"))
    res = run_shared(model, sae, tmp_path, pairs=pairs, n_perm=200, n_shuffles=2, cards=True)
    assert 5 in [d["latent"] for d in res["themes"]["threat"]["latents"]]  # (random extra rows overlap it too)
    assert res["themes"]["dilemma"]["latents"] == [] and res["themes"]["withholding"]["latents"] == []
    assert res["chance_counts"] == [0, 0] and res["verdict"].startswith("shared latents found")
    assert (tmp_path / "cards.html").exists() and (tmp_path / "per_pair.jsonl").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["command"] == "features shared"
