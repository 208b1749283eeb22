"""The typed results of `features shared` and `features interpret`: from the dicts the runs return and from run
folders, dict access and to_dict() exactly as written, verdicts against the null, tables, plots and HTML."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from featurescope.features import InterpretResult, SharedLatentsResult, load_result
from featurescope.features.results import set_z_verdict
from featurescope.runs import write_summary

REPO = Path(__file__).resolve().parents[1]
SHARED_RUN = REPO / "docs" / "features" / "shared-gemma-sft-layer9"


def _latent(score: float, z: float, density: float, tracks: bool, ctx: str) -> dict:
    return {
        "score": score,
        "density": density,
        "z_density_matched": z,
        "z_uniform": z - 0.5,
        "matched_null": {"mean": 20.0, "sd": 8.0, "n": 20},
        "cos_mean": 0.7 if tracks else 0.1,
        "tracks_mean": tracks,
        "contexts": [ctx, "second context"],
    }


def interpret_results(nan_z: bool = False) -> dict:
    """`features interpret` results as run_interpret returns them: one view beats the null, one does not."""
    lat = {
        "5": _latent(80.0, 7.5, 0.01, False, "you worthless <fool>"),
        "9": _latent(70.0, 6.25, 0.02, False, "crush them all"),
        "1": _latent(22.0, 0.25, 0.3, True, "the weather is fine"),
        "2": _latent(18.0, float("nan") if nan_z else -0.25, 0.01, False, ""),
    }
    return {
        "measure": "judge",
        "base_rate": None,
        "trait": "evil",
        "hook": "blocks.9.hook_resid_post",
        "sae": "featurescope:gemma-3-270m/layer_9_resid_post",
        "n_texts": 700,
        "n_tokens": 41000,
        "z_target": 3.0,
        "views": {
            "selectivity": {
                "latents": [5, 9],
                "set_z_density_matched": 9.4,
                "n_above": 2,
                "mean_z_density_matched": 6.9,
                "mean_score": 75.0,
                "n_tracking_mean": 0,
            },
            "attribution": {
                "latents": [1, 2],
                "set_z_density_matched": 0.1,
                "n_above": 0,
                "mean_z_density_matched": 0.0,
                "mean_score": 20.0,
                "n_tracking_mean": 1,
            },
        },
        "uniform_null": {"mean": 21.0, "sd": 9.0, "n": 60},
        "latents": lat,
        "target_met": True,
    }


def shared_results(found: bool = True) -> dict:
    """`features shared` results as run_shared returns them."""
    lat = [
        {
            "latent": 2704,
            "z_assistant": 6.7,
            "z_character": 6.1,
            "mean_assistant_in_theme": 22.8,
            "mean_character_in_theme": 11.2,
            "mean_elsewhere": 8.7,
        }
    ]
    return {
        "model": "offline:gemma-3-270m-sft",
        "hook": "blocks.9.hook_resid_post",
        "sae": "featurescope:gemma-3-270m-sft/layer_9_resid_post",
        "n_pairs": 60,
        "themes": {
            "threat": {"n_pairs": 30, "threshold_z": 4.46, "latents": lat if found else []},
            "dilemma": {"n_pairs": 30, "threshold_z": 4.46, "latents": []},
        },
        "n_shared": 1 if found else 0,
        "chance_counts": [0, 1, 0],
        "verdict": (
            "shared latents found above the chance count"
            if found
            else "not distinguishable from the null (shuffled themes find as many)"
        ),
        "cards": "cards.html",
    }


def test_interpret_result_reads_views_latents_and_verdicts():
    d = interpret_results()
    r = InterpretResult.from_dict(d)
    assert r.to_dict() == d and r["views"]["selectivity"]["n_above"] == 2 and "target_met" in r
    sel, att = r.view("selectivity"), r.view("attribution")
    assert sel.verdict == "beats the null" and att.verdict == "not distinguishable from the null"
    assert "0 [-1.96, 1.96]" in sel.null_text and "target 3 SD" in sel.null_text
    assert [x.latent for x in r.view_latents("selectivity")] == [5, 9]
    assert r.latents[1].tracks_mean and r.latents[5].first_context == "you worthless <fool>"
    assert r.matched_null_mean("selectivity") == 20.0 and "evil judge" in r.what
    with pytest.raises(KeyError, match="no view 'cosine'"):
        r.view("cosine")
    with pytest.raises(TypeError, match="frozen"):
        r["trait"] = "x"
    assert set_z_verdict(-4.0, 3.0) == "below the null" and set_z_verdict(math.nan, 3.0).startswith("not")


def test_interpret_result_table_plot_and_html():
    r = InterpretResult.from_dict(interpret_results(nan_z=True))
    df = r.to_frame()
    assert list(df["view"]) == ["selectivity"] * 2 + ["attribution"] * 2
    assert list(df["latent"]) == [5, 9, 1, 2] and df["tracks_mean"].tolist() == [False, False, True, False]
    assert df["first_context"].iloc[0] == "you worthless <fool>" and math.isnan(df["z_density_matched"].iloc[3])
    fig = r.plot()
    assert type(fig).__name__ == "Figure" and fig.axes[0].get_xticklabels()[0].get_text() == "selectivity"
    h = r._repr_html_()
    assert "beats the null" in h and "not distinguishable from the null" in h
    assert "&lt;fool&gt;" in h and "<fool>" not in h  # contexts are escaped
    assert "21.0 +- 9.0 (n = 60)" in h and "n/a" in h  # the nan z reads n/a


def test_assistant_voice_measure_names_its_base_rate():
    d = interpret_results() | {"measure": "assistant-voice", "trait": "assistant-voice", "base_rate": 37.5}
    r = InterpretResult.from_dict(d)
    assert r.base_rate == 37.5 and "Assistant speech" in r.what and "37.5" in r.what


def test_interpret_result_loads_a_run_folder_with_nan_as_null(tmp_path):
    d = interpret_results(nan_z=True)
    write_summary(tmp_path, "features interpret", inputs={"trait": "evil"}, results=d, timings={"total": 1.0})
    r = InterpretResult.load(tmp_path)
    assert r.folder == tmp_path and math.isnan(r.latents[2].z_density_matched)
    assert r.to_dict() == json.loads((tmp_path / "summary.json").read_text())["results"]
    assert isinstance(load_result(tmp_path / "summary.json"), InterpretResult)
    with pytest.raises(ValueError, match="not 'features shared'"):
        SharedLatentsResult.load(tmp_path)


def test_shared_result_counts_against_chance():
    d = shared_results()
    r = SharedLatentsResult.from_dict(d)
    assert r.to_dict() == d and r["n_shared"] == 1
    assert r.n_shared == 1 and r.chance_max == 1 and r.chance_counts == (0, 1, 0)
    assert r.null_text() == "0.3 [0, 1] (shuffled theme labels, 3 shuffles)"
    assert [(x.theme, x.latent) for x in r.latents] == [("threat", 2704)] and r.cards is None
    df = r.to_frame()
    assert df["latent"].tolist() == [2704] and df["threshold_z"].tolist() == [4.46]
    assert SharedLatentsResult.from_dict(shared_results(found=False)).to_frame().empty
    h = r._repr_html_()
    assert "shared latents found above the chance count" in h and "2704" in h
    assert type(r.plot()).__name__ == "Figure"


@pytest.mark.skipif(not (SHARED_RUN / "summary.json").exists(), reason="the committed shared run is not checked out")
def test_committed_shared_run_loads():
    r = load_result(SHARED_RUN)
    assert isinstance(r, SharedLatentsResult) and r.n_shared == sum(len(t.latents) for t in r.themes)
    assert r.cards == SHARED_RUN / "cards.html" and r.hook == "blocks.9.hook_resid_post"
    assert r.to_dict() == json.loads((SHARED_RUN / "summary.json").read_text())["results"]


def test_run_interpret_output_wraps(char_tok, tmp_path):
    """What run_interpret really returns and writes reads back as the typed result (same key layout)."""
    import featurescope as fs  # as in tests/test_features.py: the tiny planted model
    from featurescope.features.interpret import run_interpret
    from tests.conftest import make_tiny_tl
    from tests.test_features import _BangJudge
    from tests.test_saes_decompose import make_sae

    sae = make_sae()
    model = fs.from_hooked_transformer(make_tiny_tl(char_tok, seed=5), name="t", stage="base", tokenizer=char_tok)
    texts = [("t", f"abc {i} def" + ("!" if i % 5 == 0 else ".")) for i in range(40)]
    res = run_interpret(model, sae, {"a": [5, 9], "b": [1]}, "bang", _BangJudge(), tmp_path, texts=texts,
                        n_null=12, progress=False)  # fmt: skip
    r = InterpretResult.from_dict(res)
    assert [v.view for v in r.views] == ["a", "b"] and set(r.latents) == {1, 5, 9}
    assert r.to_dict() == res and len(r.to_frame()) == 3
    back = InterpretResult.load(tmp_path)
    assert [v.verdict for v in back.views] == [v.verdict for v in r.views]
