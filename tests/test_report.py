"""`featurescope report`: one self-contained HTML page (+ Markdown) from run folders.

The run folders here are synthetic but written in the formats the real commands write (see the writers named in
each builder: persona.py / cli.py / posttrain.py / stages.py / axis.py / cli_axis.py / demo.py), with the figures
(small PNGs) and ``cards.html`` fragments where those commands write them. No model is loaded.
"""

from __future__ import annotations

import base64
import html
import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from featurescope import report as R

CREATED = iter(f"2026-11-23T08:{m:02d}:00Z" for m in range(60))


# ----------------------------------------------------------------------------------------------------------------
# builders
# ----------------------------------------------------------------------------------------------------------------
def png(w: int = 3, h: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A tiny valid PNG (no matplotlib needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def model_info(name: str, stage: str, n_layers: int = 4, adapter: str | None = None) -> dict:
    """`ModelInfo.to_dict()` as `write_summary` stores it."""
    return {
        "name": name,
        "stage": stage,
        "source": "offline-package",
        "dtype": "float32",
        "n_layers": n_layers,
        "d_model": 8,
        "n_ctx": 512,
        "d_vocab": 100,
        "has_chat_template": stage != "base",
        "backend": "HookedTransformer",
        "architecture": "X",
        "device": "cpu",
        "adapter": adapter,
        "weights_sha256": "ab" * 32,
    }


CARDS_HTML = (
    "<html><meta charset='utf-8'><body><h3>{title}</h3>"
    "<div class='fs-card'><b>feature 7</b> <small>(sae, blocks.2.hook_resid_post, m) &middot; "
    "<a href='https://www.neuronpedia.org/x/7'>Neuronpedia</a></small>"
    "<img src='data:image/png;base64,{b64}'/><script>alert(1)</script></div></body></html>"
)

POST = "offline:smollm2-135m-instruct"
BASE = "offline:gemma-3-270m"


def write_run(
    d: Path, command: str, inputs: dict, results: dict, figures: list[str] = (), files: dict[str, bytes] | None = None
) -> Path:
    """A run folder as `featurescope.runs.write_summary` writes it (plus its figure files)."""
    d.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": "featurescope.summary/1",
        "command": command,
        "created": next(CREATED),
        "inputs": inputs,
        "results": results,
        "figures": list(figures),
        "timings_s": {"total": 1.5},
        "environment": {
            "featurescope": "0.1.0",
            "python": "3.11",
            "torch": "2.13.0",
            "transformer_lens": "3.9",
            "platform": "Linux",
            "cuda": False,
            "threads": 2,
        },
    }
    (d / "summary.json").write_text(json.dumps(doc, indent=2))
    for name in figures:
        if name.endswith(".png"):
            (d / name).write_bytes(png(rgb=(len(name) * 7 % 256, 90, 160)))
    for name, data in (files or {}).items():
        (d / name).write_bytes(data)
    return d


def separation(n: int) -> dict:
    return {
        "pos_mean": [1.0 + i for i in range(n)],
        "neg_mean": [0.5 * i for i in range(n)],
        "gap": [1.0 + 0.5 * i for i in range(n)],
        "cohens_d": [0.3 * (i + 1) for i in range(n)],
    }


def persona_vectors(d: Path, trait: str, n_layers: int = 4, dim: int = 8) -> dict[str, str]:
    """The three .safetensors files `persona extract` / `persona run` save (a "vectors" [L, d] tensor)."""
    import torch
    from safetensors.torch import save_file

    files = {}
    g = torch.Generator().manual_seed(0)
    for kind in ("response_mean", "prompt_mean", "last_prompt"):
        p = d / f"{trait}.{kind}.safetensors"
        d.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": torch.randn(n_layers, dim, generator=g)}, str(p), metadata={"trait": trait})
        files[kind] = str(p)
    return files


def build_runs(root: Path) -> dict[str, Path]:
    """One run folder per command family, in the real writers' formats. Returns name -> folder."""
    runs: dict[str, Path] = {}
    pm = model_info(POST, "post-trained")
    bm = model_info(BASE, "base")
    steer_rows = [
        {
            "alpha": a,
            "trait_score": 10 + 5 * i,
            "coherence": 80 - i,
            "logprob_per_token": -2.0 - 0.1 * i,
            "examples": [f"answer at alpha {a}"],
        }
        for i, a in enumerate((-8.0, 0.0, 8.0))
    ]
    per_level = [{"level": i, "projection": 0.2 * i, "trait_score": 20.0 * i} for i in range(4)]

    # persona.py::run_persona
    d = root / "persona-run"
    files = persona_vectors(d, "evil")
    runs["persona run"] = write_run(
        d,
        "persona run",
        inputs={
            "model": pm,
            "trait": "evil",
            "judge": "embedding:all-MiniLM-L6-v2",
            "extraction": {
                "pos_threshold": 50.0,
                "neg_threshold": 50.0,
                "coherence_threshold": 50.0,
                "max_new_tokens": 24,
                "n_questions": 3,
                "n_pairs": 2,
                "batch_size": 8,
                "seed": 0,
            },
            "alpha": 8.0,
            "alphas": [-8.0, 0.0, 8.0],
            "layers": [1, 2],
        },
        results={
            "counts": {"generated_per_side": 6, "kept_pos": 4, "kept_neg": 5},
            "separation": separation(4),
            "vector_norms": [0.5, 1.0, 2.0, 3.0],
            "files": files,
            "layer_choice": {
                "best_layer": 2,
                "alpha": 8.0,
                "baseline": {"trait_score": 10, "coherence": 80},
                "rows": [
                    {"layer": 1, "trait_score": 12, "coherence": 79, "effect": 2},
                    {"layer": 2, "trait_score": 30, "coherence": 70, "effect": 20},
                ],
                "min_coherence": 50.0,
                "questions": ["q1"],
            },
            "chosen_layer": 2,
            "steering": {"hook": "blocks.2.hook_resid_post", "questions": ["q1"], "rows": steer_rows},
            "monitor": {
                "hook": "blocks.2.hook_resid_post",
                "r_samples": 0.61,
                "r_levels": 0.93,
                "per_level": per_level,
                "n": 8,
            },
            "flagging": {
                "dataset": "featurescope/data/flagging/demo.jsonl",
                "per_dataset": {"evil_laden": 1.2, "neutral": -0.1},
                "per_sample": [{"id": 1, "dataset": "evil_laden", "projection_difference": 1.2}],
                "auroc_trait_vs_neutral": 0.9,
                "ranking": [],
            },
        },
        figures=["separation.png", "layer_choice.png", "steering.png", "monitor.png", "flagging.png"],
    )

    # cli.py persona extract (a base model)
    d = root / "persona-extract"
    files = persona_vectors(d, "evil")
    runs["persona extract"] = write_run(
        d,
        "persona extract",
        inputs={
            "model": bm,
            "trait": "evil",
            "judge": "embedding:all-MiniLM-L6-v2",
            "config": {
                "pos_threshold": 50.0,
                "neg_threshold": 50.0,
                "coherence_threshold": 50.0,
                "max_new_tokens": 48,
                "n_questions": 3,
                "n_pairs": None,
                "batch_size": 8,
                "seed": 0,
            },
        },
        results={
            "counts": {"generated_per_side": 15, "kept_pos": 6, "kept_neg": 7},
            "separation": separation(4),
            "best_separation_layer": 3,
            "vector_norms": [0.5, 1.0, 2.0, 3.0],
            "files": files,
        },
        figures=["layers.png"],
    )

    # cli.py persona steer / monitor / flag (inputs.layer is an int)
    vec = str(runs["persona extract"] / "evil.response_mean.safetensors")
    runs["persona steer"] = write_run(
        root / "persona-steer",
        "persona steer",
        inputs={
            "model": pm,
            "vector": vec,
            "layer": 2,
            "alphas": [-8.0, 0.0, 8.0],
            "judge": "embedding:all-MiniLM-L6-v2",
        },
        results={"hook": 2, "questions": ["q1"], "rows": steer_rows},
        figures=["steering.png"],
    )
    runs["persona monitor"] = write_run(
        root / "persona-monitor",
        "persona monitor",
        inputs={"model": pm, "vector": vec, "layer": 2, "judge": "embedding:all-MiniLM-L6-v2"},
        results={"hook": "blocks.2.hook_resid_post", "r_samples": 0.7, "r_levels": 0.9, "per_level": per_level, "n": 8},
    )
    runs["persona flag"] = write_run(
        root / "persona-flag",
        "persona flag",
        inputs={"model": pm, "vector": vec, "layer": 2, "dataset": "flag.jsonl"},
        results={
            "per_sample": [{"id": 1, "dataset": "a", "projection_difference": 0.4}],
            "per_dataset": {"a": 0.4, "b": -0.2},
        },
    )

    # cli.py sae train (inputs.layers is the comma-separated CLI string; results keyed by hook)
    ev = {
        "hook": "blocks.1.hook_resid_post",
        "model": BASE,
        "fraction_variance_explained": 0.81,
        "l0": 32.0,
        "dead_fraction": 0.02,
        "n_tokens": 4096,
        "ce_clean": 3.0,
        "ce_with_sae": 3.4,
        "ce_zero_ablation": 9.0,
        "ce_loss_recovered": 0.93,
        "n_special_excluded": 10,
    }
    runs["sae train"] = write_run(
        root / "sae-train",
        "sae train",
        inputs={"model": bm, "layers": "1,2", "d_sae": 256, "k": 16, "training_tokens": 100000, "seed": 0},
        results={
            h: {
                **ev,
                "hook": h,
                "training_tokens": 100000,
                "d_sae": 256,
                "k": 16,
                "corpus": "held-out wiki sample",
                "heldout_tokens": 4096,
            }
            for h in ("blocks.1.hook_resid_post", "blocks.2.hook_resid_post")
        },
    )
    runs["sae eval"] = write_run(
        root / "sae-eval",
        "sae eval",
        inputs={
            "model": bm,
            "sae": "saes/gemma-base/layer_1_resid_post",
            "sae_id": None,
            "hook": None,
            "heldout_tokens": 4096,
        },
        results={**ev, "density_hist": [0, 1, 4, 9, 20, 9, 3, 1] + [0] * 12},
    )

    # cli.py decompose: fraction_explained.png and cards.html
    dec = {
        m: {
            "method": m,
            "top": [[7, 0.5], [3, 0.2]],
            "fraction_explained": [0.3, 0.5],
            "k_for_50pct": 2,
            "k_for_90pct": 9,
        }
        for m in ("cosine", "attribution")
    }
    runs["decompose"] = write_run(
        root / "decompose",
        "decompose",
        inputs={
            "model": pm,
            "vector": vec,
            "sae": "saes/smol/layer_2_resid_post",
            "hook": "blocks.2.hook_resid_post",
            "responses": None,
        },
        results={"decompositions": dec, "cards": []},
        figures=["fraction_explained.png", "cards.html"],
        files={
            "cards.html": CARDS_HTML.format(title="evil vector cards", b64=base64.b64encode(png()).decode()).encode()
        },
    )

    # cli.py capture (no figures)
    runs["capture"] = write_run(
        root / "capture",
        "capture",
        inputs={
            "model": pm,
            "prompts_file": "prompts.txt",
            "n_prompts": 3,
            "hooks": ["blocks.0.hook_resid_post", "blocks.3.hook_resid_post"],
            "reduction": "response_mean",
            "format": "auto",
            "batch_size": 8,
            "dtype": "float32",
        },
        results={
            "store": "x/activations",
            "n_tokens": 120,
            "tokens_per_s": 400.0,
            "shapes": {"blocks.0.hook_resid_post": [3, 8]},
            "mean_norm": {"blocks.0.hook_resid_post": 3.2},
        },
    )

    # demo.py::run_demo
    demo_res = {
        name: {
            "info": info,
            "format": "chat",
            "example_prompt": "...",
            "responses": [{"question": "Who are you?", "response": "I am ...", "stopped": True}],
            "capture_tokens_per_s": 900.0,
            "response_mean_norm_per_layer": {f"blocks.{i}.hook_resid_post": 1.0 + i for i in range(4)},
            "cos_response_vs_last_prompt_per_layer": {f"blocks.{i}.hook_resid_post": 0.1 * i for i in range(4)},
        }
        for name, info in ((BASE, bm), (POST, pm))
    }
    runs["demo"] = write_run(
        root / "demo",
        "demo",
        inputs={"models": [BASE, POST], "questions": ["Who are you?"], "quick": True},
        results=demo_res,
    )

    # posttrain.py::run_posttrain: loss_adapter.png
    chat_eval = {
        "format": "chat",
        "n": 4,
        "n_identity": 2,
        "identity_ai_fraction": 0.5,
        "assistant_format_fraction": 0.75,
        "answers": [],
    }
    runs["posttrain"] = write_run(
        root / "posttrain",
        "posttrain",
        inputs={
            "config": {
                "base": BASE,
                "data": "featurescope/data/dialogues",
                "heldout": "featurescope/data/dialogues/heldout.jsonl",
                "epochs": 1,
                "lr": 2e-4,
                "steer_vector": None,
                "steer_layer": None,
                "max_dialogues": 16,
            },
            "device": "cpu",
        },
        results={
            "dataset": {"dialogues": 16, "available": 200, "tokens": 4000, "supervised_tokens": 2000},
            "base_eval": {
                "chat": {**chat_eval, "assistant_format_fraction": 0.0, "identity_ai_fraction": 0.0},
                "transcript": chat_eval,
            },
            "adapter": {"steps": 4, "final_loss": 1.8, "size_bytes": 100000, "eval": {"chat": chat_eval}},
        },
        figures=["loss_adapter.png"],
    )

    # stages.py::run_stages: transfer / matching / shift / persona_cosine figures, cards.html
    tr = {
        sk: {
            mk: {
                s: {"fraction_variance_explained": 0.8, "ce_loss_recovered": 0.9, "l0": 20.0, "dead_fraction": 0.01}
                for s in ("plain", "chat")
            }
            for mk in ("base_model", "post_model")
        }
        for sk in ("base_sae", "post_sae")
    }
    shift_rows = [
        {
            "latent": 5,
            "freq_base": 0.01,
            "freq_post": 0.2,
            "mean_base": 0.1,
            "mean_post": 1.0,
            "delta_freq": 0.19,
            "delta_mean": 0.9,
        }
    ]
    runs["stages"] = write_run(
        root / "stages",
        "stages",
        inputs={
            "base_model": bm,
            "post_model": model_info(BASE.replace("270m", "270m-it"), "post-trained"),
            "hook": "blocks.2.hook_resid_post",
            "base_sae": {"name": "base-sae/blocks.2", "d_sae": 64, "d_in": 8, "trained_on": BASE},
            "post_sae": {"name": "post-sae/blocks.2", "d_sae": 64, "d_in": 8, "trained_on": BASE + "-it"},
            "config": {"parts": ["transfer", "matching", "shift", "persona"], "reuse_threshold": 0.7},
            "crosscoder": None,
        },
        results={
            "hook": "blocks.2.hook_resid_post",
            "layer": 2,
            "sae_names": {"base": "base-sae/blocks.2", "post": "post-sae/blocks.2"},
            "texts": {
                "plain": {
                    "description": "held-out corpus rows",
                    "rows": 4,
                    "context": 64,
                    "tokens": 256,
                    "assistant_tokens": 0,
                },
                "chat": {
                    "description": "held-out dialogues",
                    "rows": 4,
                    "context": 64,
                    "tokens": 256,
                    "assistant_tokens": 90,
                },
                "format": "same token ids",
            },
            "transfer": {**tr, "deltas": {}, "note": "BOS excluded"},
            "matching": {
                "threshold": 0.7,
                "n_post_latents": 64,
                "n_base_latents": 64,
                "fraction_post_reused": 0.995,
                "fraction_base_kept": 0.99,
                "n_new": 1,
                "n_lost": 1,
                "baselines": {
                    "random": {"fraction_post_reused": 0.0, "median_best_cos": 0.3, "what": "random unit directions"}
                },
                "histograms": {"post_to_base": {"edges": [-1, 0, 1], "counts": [1, 63]}},
                "new_latents": [12],
            },
            "activation_shift": {
                "base_sae": {"rank_by": "frequency", "up": shift_rows, "down": [], "frequency_correlation": 0.9},
                "tokens": "Assistant-turn tokens",
            },
            "cards": {"new latents": [{"feature": 12, "density": 0.01, "promoted": ["a"]}]},
            "persona": {
                "how": "prompt-side vectors",
                "layer": 2,
                "top_k": 10,
                "traits": {
                    "evil": {
                        "cosine_per_layer": [0.9, 0.8, 0.7, 0.6],
                        "cosine_at_layer": 0.7,
                        "norm_base": 1.0,
                        "norm_post": 1.2,
                    }
                },
            },
        },
        figures=["transfer.png", "matching.png", "shift_base_sae.png", "cards.html", "persona_cosine.png"],
        files={"cards.html": CARDS_HTML.format(title="new and shifted", b64=base64.b64encode(png()).decode()).encode()},
    )

    # axis.py::run_axis
    an = {
        "hook": "blocks.2.hook_resid_post",
        "axis_norm": 3.0,
        "explained_variance": [0.5, 0.2, 0.1],
        "pcs_for_70pct": 2,
        "axis_pc1_cosine": 0.8,
        "default_pc1_percentile": 1.0,
        "top_roles": ["assistant"],
        "bottom_roles": ["ghost"],
    }
    ax_rows = [
        {
            "system_prompt": "",
            "alpha": a,
            "ai_fraction": 1.0 - 0.1 * i,
            "coherence": 0.9,
            "readback_projection": a,
            "examples": [],
        }
        for i, a in enumerate((-2.0, 0.0, 2.0))
    ]
    drift_part = {
        "per_script": {"therapy": [1.0, 0.5, 0.2]},
        "first_turn_mean": 1.0,
        "last_turn_mean": 0.2,
        "change_per_script": {"therapy": -0.8},
        "ai_fraction_of_replies": 0.5,
    }
    runs["axis run"] = write_run(
        root / "axis-run",
        "axis run",
        inputs={
            "model": pm,
            "config": {"n_roles": 6, "n_questions": 2, "instructions": 1, "max_new_tokens": 24},
            "judge": "keyword",
            "layer": "blocks.2.hook_resid_post",
            "alphas": [-2.0, 0.0, 2.0],
            "drift_turns": 3,
            "cap_layers": None,
            "cap_percentile": 25.0,
            "library": ["roles"],
            "prefill_axis": None,
            "compare_with": None,
        },
        results={
            "axis_file": "axis.safetensors",
            "hook": "blocks.2.hook_resid_post",
            "analysis": an,
            "per_layer": {"axis_pc1_cosine": [0.5, 0.6, 0.8, 0.7]},
            "counts": {"n_jobs": 12, "n_default": 2, "n_role_responses": 10, "n_kept": 10},
            "ranked_roles": [["assistant", "helpful", 2.0], ["ghost", "fantastical", -1.0]],
            "steering": {"hook": "blocks.2.hook_resid_post", "alphas": [-2.0, 0.0, 2.0], "rows": ax_rows},
            "drift": {
                "hook": "blocks.2.hook_resid_post",
                "n_turns": 3,
                "uncapped": drift_part,
                "capped": drift_part,
                "cap_layers": [1, 2],
                "cap_percentile": 25.0,
            },
        },
        figures=[
            "explained_variance.png",
            "pc1_pc2.png",
            "axis_layers.png",
            "roles_ranked.png",
            "steering.png",
            "drift.png",
            "drift_capped.png",
        ],
    )

    # cli/axis.py: sub-commands write their part under the key `axis run` uses (featurescope.axis.sections)
    runs["axis drift"] = write_run(
        root / "axis-drift",
        "axis drift",
        inputs={
            "model": bm,
            "axis": "runs/axis/axis.safetensors",
            "layer": "blocks.2.hook_resid_post",
            "turns": 3,
            "scripts": ["therapy"],
            "cap_layers": None,
            "percentile": 25.0,
        },
        results={
            "drift": {
                "hook": "blocks.2.hook_resid_post",
                "uncapped": {
                    "per_script": {"therapy": [0.9, 0.4, 0.1]},
                    "first_turn_mean": 0.9,
                    "last_turn_mean": 0.1,
                    "last_replies": {"therapy": "..."},
                },
                "tau_at_layer": 0.3,
            }
        },
        figures=["drift.png"],
    )
    runs["axis decompose"] = write_run(
        root / "axis-decompose",
        "axis decompose",
        inputs={
            "model": pm,
            "axis": "runs/axis/axis.safetensors",
            "sae": "saes/smol/layer_2_resid_post",
            "hook": "blocks.2.hook_resid_post",
        },
        results={"decompositions": dec, "cards": []},
        figures=["cards.html"],
        files={"cards.html": CARDS_HTML.format(title="axis cards", b64=base64.b64encode(png()).decode()).encode()},
    )
    return runs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    runs = build_runs(root)
    # things the report must not pick up: an activation store and an earlier report's summary
    (root / "capture" / "activations").mkdir()
    (root / "capture" / "activations" / "summary.json").write_text("{}")
    write_run(root / "old-report", "report", inputs={"runs": ["x"]}, results={})
    out = tmp_path_factory.mktemp("report") / "report.html"
    info = R.write_report([root], out, title="test report")
    page = Path(info["html"]).read_text()
    md = Path(info["markdown"]).read_text()
    return {"root": root, "runs": runs, "info": info, "html": page, "md": md, "out": out}


def articles(page: str) -> dict[str, str]:
    """data-command -> the article's HTML (each command appears once in the synthetic set)."""
    found = re.findall(
        r"<article class=[\"']run[\"'] id=[\"']run\d+[\"'] data-command=[\"']([^\"']*)[\"']>(.*?)</article>", page, re.S
    )
    return {cmd: body for cmd, body in found}


# ----------------------------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------------------------
def test_finds_every_run_and_skips_reports_and_stores(built):
    info = built["info"]
    assert info["n_runs"] == len(built["runs"])
    assert set(info["commands"]) == set(built["runs"])
    assert not any("activations" in p or "old-report" in p for p in info["runs"])


def test_html_is_self_contained(built):
    page = built["html"]
    refs = re.findall(r"""(?<![\w-])(src|href|srcset|poster|action)\s*=\s*(['"]?)([^'"\s>]*)""", page, re.I)
    assert refs
    for attr, _, val in refs:
        if attr.lower() == "href":
            assert val.startswith("#"), f"href to {val[:80]!r}: the page must only link within itself"
        else:
            assert val.startswith("data:image/"), f"{attr}={val[:80]!r} is not an embedded data: URI"
    assert not re.search(r"https?://", " ".join(v for _, _, v in refs))
    low = page.lower()
    assert "<script" not in low and "<iframe" not in low and "<link" not in low and "@import" not in low
    assert not re.search(r"\son[a-z]+\s*=", low), "no event-handler attributes (the page has no JavaScript)"
    assert "javascript:" not in low
    assert not re.search(r"url\(\s*['\"]?\s*(https?:|//)", low)
    # every figure of every run is embedded as a data: URI (the bytes round-trip)
    for d in built["runs"].values():
        for f in json.loads((d / "summary.json").read_text())["figures"]:
            if f.endswith(".png"):
                assert base64.b64encode((d / f).read_bytes()).decode() in page, f"{d.name}/{f} not embedded"
    # the cards' external link survives as readable text, not as a link
    assert "https://www.neuronpedia.org/x/7" in page and "href='https://www.neuronpedia.org" not in page


def test_ids_are_unique_and_sections_present(built):
    ids = re.findall(r"\sid=[\"']([^\"']+)[\"']", built["html"])
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup, f"duplicate element ids: {dup}"
    for sid in ("top", "toc", "overview", "persona", "saes", "stages", "axis", "posttrain", "foundation", "papers"):
        assert sid in ids
    # every in-page link points at an element that exists
    for target in re.findall(r"href=[\"']#([^\"']+)[\"']", built["html"]):
        assert target in ids, f"dangling in-page link #{target}"


EXPECTED_PROVENANCE = {
    # command: substrings of (model, stage, layer, SAE) in the run's provenance line
    "persona run": (POST, "post-trained", "blocks.2.hook_resid_post (chosen by steering effect)", "none"),
    "persona extract": (BASE, "base", "every layer", "none"),
    "persona steer": (POST, "post-trained", "blocks.2.hook_resid_post", "none"),
    "persona monitor": (POST, "post-trained", "blocks.2.hook_resid_post", "none"),
    "persona flag": (POST, "post-trained", "blocks.2.hook_resid_post", "none"),
    "sae train": (BASE, "base", "blocks.1.hook_resid_post, blocks.2.hook_resid_post", "trained here: d_sae 256"),
    "sae eval": (BASE, "base", "blocks.1.hook_resid_post", "saes/gemma-base/layer_1_resid_post"),
    "decompose": (POST, "post-trained", "blocks.2.hook_resid_post", "saes/smol/layer_2_resid_post"),
    "capture": (POST, "post-trained", "blocks.0.hook_resid_post, blocks.3.hook_resid_post", "none"),
    "demo": (f"{BASE}, {POST}", f"{POST}: post-trained", "every layer", "none"),
    "posttrain": (BASE, "base -> post-trained", "all layers (LoRA)", "none"),
    "stages": (
        f"base: {BASE} (base); post: {BASE}-it (post-trained)",
        "base: base; post: post-trained",
        "blocks.2.hook_resid_post",
        "base: base-sae/blocks.2 (d_sae 64, trained on offline:gemma-3-270m)",
    ),
    "axis run": (POST, "post-trained", "blocks.2.hook_resid_post", "none"),
    "axis drift": (BASE, "base", "blocks.2.hook_resid_post", "none"),
    "axis decompose": (POST, "post-trained", "blocks.2.hook_resid_post", "saes/smol/layer_2_resid_post"),
}


def prov_of(article: str) -> dict[str, str]:
    line = re.search(r"<p class='prov'>(.*?)</p>", article, re.S).group(1)
    return {k: html.unescape(v).strip() for k, v in re.findall(r"<span><b>(\w+)</b> (.*?)</span>", line, re.S)}


def test_each_run_has_a_section_with_provenance(built):
    arts = articles(built["html"])
    assert set(arts) == set(EXPECTED_PROVENANCE)
    for cmd, (model, stage, layer, sae) in EXPECTED_PROVENANCE.items():
        p = prov_of(arts[cmd])
        assert set(p) == {"model", "stage", "layer", "sae", "data", "created"}, cmd
        assert model in p["model"], (cmd, p)
        assert stage in p["stage"], (cmd, p)
        assert layer in p["layer"], (cmd, p)
        assert sae in p["sae"], (cmd, p)
        assert p["created"].startswith("2026-11-23T"), (cmd, p)
    # data provenance of a few runs
    assert "trait 'evil'" in prov_of(arts["persona run"])["data"]
    assert "flagging featurescope/data/flagging/demo.jsonl" in prov_of(arts["persona run"])["data"]
    assert "dialogues featurescope/data/dialogues" in prov_of(arts["posttrain"])["data"]
    assert "held-out dialogues" in prov_of(arts["stages"])["data"]
    assert "axis runs/axis/axis.safetensors" in prov_of(arts["axis drift"])["data"]
    assert "role library: 6 roles x 2 questions" in prov_of(arts["axis run"])["data"]
    assert "prompts prompts.txt" in prov_of(arts["capture"])["data"]


def test_every_figure_caption_names_its_provenance(built):
    arts = articles(built["html"])
    n_figs = 0
    for cmd, art in arts.items():
        model, stage, layer, sae = EXPECTED_PROVENANCE[cmd]
        caps = re.findall(r"<figcaption>(.*?)</figcaption>", art, re.S)
        caps += re.findall(r"<p class='cap'>(.*?)</p>", art, re.S)  # feature-card blocks
        for c in caps:
            c = html.unescape(c)
            for key in ("model:", "stage:", "layer:", "SAE:", "data:"):
                assert key in c, (cmd, key, c)
            assert model.split(";")[0].split(",")[0].replace("base: ", "") in c, (cmd, c)
            assert layer in c and sae in c, (cmd, c)
        n_figs += len(caps)
        # every listed PNG got a figure with an <img> (nothing is "listed but not found")
        n_png = sum(
            f.endswith(".png") for f in json.loads((built["runs"][cmd] / "summary.json").read_text())["figures"]
        )
        assert art.count("<img alt=") == n_png, cmd
        assert "listed but not found" not in art, cmd
    assert n_figs >= 25
    # the persona vector's layer profile is drawn from the .safetensors files (inline SVG)
    assert "persona vector norm per layer" in arts["persona extract"]
    assert "cosine with the response_mean vector" in arts["persona extract"]


def test_cards_are_inlined_and_sanitised(built):
    arts = articles(built["html"])
    for cmd in ("decompose", "stages", "axis decompose"):
        art = arts[cmd]
        assert re.search(r"<div class=[\"']fs-card", art), cmd  # bleach (html5lib) writes double quotes
        assert "<script" not in art and "alert(1)" not in art, cmd
        assert re.search(r"<img src=[\"']data:image/png;base64,", art), cmd


def test_axis_subcommands_render_their_part(built):
    arts = articles(built["html"])
    drift = arts["axis drift"]
    assert "Drift and capping" in drift and "first-turn mean projection" in drift
    assert "<td class='n'>0.9</td>" in drift  # the first-turn mean the library wrote
    assert "Top SAE features" in arts["axis decompose"]
    run = arts["axis run"]
    for h in ("Persona space", "Role ranking", "Steering along the axis", "Drift and capping"):
        assert h in run


def test_key_numbers_with_paper_values(built):
    arts = articles(built["html"])
    assert "monitoring r (per response)" in arts["persona run"] and "r = 0.75-0.83" in arts["persona run"]
    assert "new features (post latents with no base match)" in arts["stages"] and "&lt; 1%" in arts["stages"]
    assert "cos(axis, PC1)" in arts["axis run"] and "&gt; 0.71" in arts["axis run"]


def test_markdown_lists_every_run(built):
    md, out = built["md"], built["out"]
    assert md.startswith("# test report")
    assert "[report.html](report.html)" in md
    heads = re.findall(r"^### \d+\. (.+)$", md, re.M)
    assert len(heads) == len(built["runs"])
    for cmd in built["runs"]:
        assert any(h.startswith(cmd + " - ") for h in heads), cmd
    for key in ("- model:", "- stage:", "- layer:", "- SAE:", "- data:"):
        assert md.count(key) == len(built["runs"]), key
    assert "| monitoring r (per response) | 0.61 (n = 8) |  |  | Chen et al. 2025: r = 0.75-0.83 |" in md
    # figure links resolve from the Markdown file's folder
    links = re.findall(r"\]\(([^)]+\.(?:png|html))\)", md)
    assert links
    for link in links:
        assert (out.parent / link).exists(), link


def test_empty_folder_says_no_runs(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    info = R.write_report([empty], tmp_path / "rep")
    assert info["n_runs"] == 0 and info["html"].endswith("report.html")
    page = Path(info["html"]).read_text()
    assert "No runs found" in page and 'id="empty"' in page
    assert "No runs found" in Path(info["markdown"]).read_text()


def test_cli_report(tmp_path, built, capsys):
    from featurescope.cli import main

    empty = tmp_path / "nothing"
    empty.mkdir()
    out = tmp_path / "rep" / "report.html"  # --out is the folder; report.html is written inside it
    assert main(["report", str(empty), "--out", str(out.parent)]) == 0
    assert "no summary.json found" in capsys.readouterr().out
    assert "No runs found" in out.read_text()
    own = json.loads((out.parent / "summary.json").read_text())
    assert own["command"] == "report" and own["results"]["n_runs"] == 0
    # a report over a folder that holds an earlier report leaves that report out
    assert main(["report", str(built["runs"]["capture"]), str(out.parent), "--out", str(tmp_path / "r2")]) == 0
    assert json.loads((tmp_path / "r2" / "summary.json").read_text())["results"]["commands"] == ["capture"]
    # a missing folder is a clear error
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r3")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # --out names the folder, not the HTML file
    assert main(["report", str(empty), "--out", str(tmp_path / "r4" / "report.html")]) == 2
    assert "--out is the report's folder" in capsys.readouterr().err and not (tmp_path / "r4").exists()


def test_malformed_summary_does_not_sink_the_report(tmp_path):
    write_run(
        tmp_path / "bad",
        "persona run",
        inputs={"model": 3, "trait": ["x"]},
        results={"steering": "oops", "separation": {"cohens_d": "nan"}, "monitor": [1, 2]},
        figures=["missing.png"],
    )
    (tmp_path / "bad" / "missing.png").unlink()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "summary.json").write_text(json.dumps({"command": "something new", "results": {"a": 1}}))
    (tmp_path / "truncated").mkdir()
    (tmp_path / "truncated" / "summary.json").write_text('{"command": "persona run", "inputs": {')
    with pytest.raises((AttributeError, TypeError)):  # the tests run strict: a renderer failure is an error, not a note
        R.write_report([tmp_path], tmp_path / "rep0" / "report.html")
    info = R.write_report([tmp_path], tmp_path / "rep" / "report.html", strict=False)
    page = Path(info["html"]).read_text()
    assert info["n_runs"] == 3
    assert "listed but not found in the run folder: missing.png" in page
    assert "Other runs" in page and "something new" in page
    assert "unreadable summary.json" in page and "cannot be read" in page


def test_sanitize_fragment():
    frag = (
        "<html><head><link rel=stylesheet href='https://cdn.x/a.css'><script src=https://x/y.js></script>"
        "</head><body><img src=https://x/a.png><img src=\"local.png\"><img src='data:image/png;base64,AAAA'>"
        "<a href='javascript:alert(1)'>x</a><div onclick=\"alert(1)\" onmouseover=alert(2)>d</div>"
        "<iframe src='//evil/x'></iframe><style>@import url(https://x/y.css); .a{background:url('http://x/b.png')}"
        '</style><a href="https://www.neuronpedia.org/a/1">Neuronpedia</a></body></html>'
    )
    s = R.sanitize_fragment(frag)
    low = s.lower()
    assert "<script" not in low and "<iframe" not in low and "<link" not in low and "@import" not in low
    assert "onclick" not in low and "onmouseover" not in low and "javascript:" not in low
    assert not re.search(r"(?<![\w-])(src|href)\s*=\s*['\"]?\s*(https?:|//)", s)
    assert not re.search(r"(?<![\w-])src\s*=\s*['\"]?local\.png", s)
    assert '<img src="data:image/png;base64,AAAA">' in s and "local.png" not in s
    assert not re.search(r"url\(\s*['\"]?\s*https?:", low)
    assert "<code>https://www.neuronpedia.org/a/1</code>" in s
    # inline styles survive through the CSS allow-list; url() and unknown properties do not
    t = R.sanitize_fragment('<div style="color: red; background-image: url(http://x/y.png); position: fixed">t</div>')
    assert "color: red" in t and "url(" not in t and "position" not in t


def test_build_report_is_pure_on_summary_dicts():
    page = R.build_report(
        [
            {
                "command": "sae eval",
                "created": "2026-01-01T00:00:00Z",
                "_path": "x",
                "inputs": {"model": {"name": "m", "stage": "base"}, "sae": "s", "hook": 3},
                "results": {"fraction_variance_explained": 0.5, "l0": 10},
            }
        ],
        generated="T",
    )
    assert "blocks.3.hook_resid_post" in page and "generated T" in page
    md = R.build_markdown([{"command": "sae eval", "inputs": {}, "results": {}}], generated="T")
    assert "### 1. sae eval" in md


def test_persona_features_render_with_their_nulls(tmp_path):
    """`features shared`, `features interpret`, `crosscoder train` and `crosscoder compare` runs land in the features
    section with their headline numbers: the shared-latent count against the chance count, each view's set z against
    density-matched random latents with its verdict, the crosscoder's FVE and relative-norm classes, the seed
    control's matched fractions against the rotated-decoder chance."""
    from tests.test_features_results import interpret_results, shared_results

    write_run(
        tmp_path / "shared",
        "features shared",
        inputs={"model": "offline:gemma-3-270m-sft", "sae": "featurescope:gemma-3-270m-sft/layer_9_resid_post",
                "hook": "blocks.9.hook_resid_post", "n_perm": 500, "n_shuffles": 3},
        results=shared_results(),
        files={"cards.html": CARDS_HTML.format(title="shared", b64=base64.b64encode(png()).decode()).encode()},
    )  # fmt: skip
    write_run(
        tmp_path / "interpret",
        "features interpret",
        inputs={"sae": "featurescope:gemma-3-270m/layer_9_resid_post", "trait": "evil", "n_null": 60,
                "measure": "judge", "latents": {"selectivity": [5, 9], "attribution": [1, 2]}},
        results=json.loads(json.dumps(interpret_results(nan_z=True)).replace("NaN", "null")),
    )  # fmt: skip
    cc_report = {
        "thresholds": {"base_only_r_below": 0.1, "post_only_r_above": 0.9, "nu_max": 0.2, "recon_floor": 0.1},
        "counts": {"base_only": 3, "shared": 250, "post_only": 3},
        "post_only_passing_latent_scaling": 1,
        "post_only_flagged_as_artifacts": 2,
        "post_only_never_active": 0,
        "nu_error_median": {"post_only": 0.3, "shared": 0.9},
        "nu_recon_median": {"post_only": None, "shared": 0.8},
        "relative_norm_hist": {"edges": [-1.0, 0.0, 1.0], "counts": [3, 253]},
        "n_tokens": 4000,
        "space": "training space (model activations x activation_scales)",
        "latent_scaling_rule": "truly post-only: nu_error < 0.2",
    }
    write_run(
        tmp_path / "cc",
        "crosscoder train",
        inputs={"base_model": model_info(BASE, "base"), "post_model": model_info(BASE + "-sft", "post-trained"),
                "hook": "blocks.9.hook_resid_post", "layer": 9, "d_sae": 256},
        results={"training": {"path": "crosscoder"}, "retrain": None,
                 "eval": {"fve_base": 0.71, "fve_post": 0.69, "fve": 0.7, "l0": 32.0, "dead_fraction": 0.05,
                          "n_tokens": 4000, "n_latents": 256},
                 "report": cc_report},
    )  # fmt: skip
    write_run(
        tmp_path / "compare",
        "crosscoder compare",
        inputs={"a": "runs/cc-s0", "b": "runs/cc-s1", "threshold": 0.7, "seed": 0, "converged_at": 0.5},
        results={"threshold": 0.7, "converged_at": 0.5, "converged": False,
                 "reuse": {"a_to_b": 0.31, "b_to_a": 0.3, "chance": 0.01},
                 "verdict": "NOT CONVERGED ACROSS SEEDS: ...", "text": "crosscoder seed control: A = <a>", "notes": []},
    )  # fmt: skip
    info = R.write_report([tmp_path], tmp_path / "rep" / "report.html")
    page = Path(info["html"]).read_text()
    arts = articles(page)
    assert set(arts) == {"features shared", "features interpret", "crosscoder train", "crosscoder compare"}
    cmp_ = arts["crosscoder compare"]
    assert "31.0% / 30.0%" in cmp_ and "1.0% (the other decoder under a random rotation)" in cmp_
    assert "not converged across seeds" in cmp_ and "A = &lt;a&gt;" in cmp_
    assert "Persona features: shared Assistant / character latents" in page and "id='features'" in page.replace(
        '"', "'"
    )
    sh = arts["features shared"]
    assert "latents shared by the Assistant and story characters (all themes)" in sh
    assert "0.3 [0, 1] (shuffled theme labels, 3 shuffles)" in sh and "shared latents found above the chance" in sh
    assert "2704" in sh and "cards.html in the run folder" in sh  # not listed as a figure: named, not inlined
    it = arts["features interpret"]
    assert "selectivity: set z of its top 2 latents" in it and "<b>+9.40</b>" in it
    assert "beats the null" in it and "not distinguishable from the null" in it
    assert "0 [-1.96, 1.96] (set z of 2 density-matched random latents; target 3 SD)" in it
    assert "you worthless &lt;fool&gt;" in it and "<fool>" not in it
    assert "features interpret - evil - featurescope:gemma-3-270m/layer_9_resid_post" in it
    cc = arts["crosscoder train"]
    assert "crosscoder FVE (base / post / joint)" in cc and "0.71 / 0.69 / 0.7" in cc
    assert "3 / 250 / 3" in cc and "1 of 3" in cc and "Latent Scaling of the post-only latents" in cc
    md = Path(info["markdown"]).read_text()
    assert "## Persona features" in md and "beats the null" in md


# ----------------------------------------------------------------------------------------------------------------
# integration: the page in a real headless Chromium
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_browser_check_in_headless_chromium(built, tmp_path):
    if R.find_chromium() is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium; or set FEATURESCOPE_CHROMIUM)")
    shot = tmp_path / "shot.png"
    res = R.browser_check(built["info"]["html"], screenshot=shot, max_height=1200)
    assert res["errors"] == [], res["errors"]
    assert res["requests"] == [], res["requests"]
    for sid in ("overview", "persona", "saes", "stages", "axis", "posttrain", "foundation", "papers", "toc"):
        assert sid in res["ids"], sid
    assert res["method"] == "playwright" and res["title"] == "test report"
    assert res["images"]["n"] == built["html"].count("<img ") and res["images"]["broken"] == 0
    assert res["svgs"] > 0  # the matplotlib charts are inline SVG
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_browser_check_catches_a_broken_page(tmp_path):
    """Planted failures are found: a console error, an uncaught exception, an external request, a broken image."""
    if R.find_chromium() is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium; or set FEATURESCOPE_CHROMIUM)")
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><head><title>bad</title></head><body><img src='missing.png'><img src='http://127.0.0.1:9/x.png'>"
        "<script>console.error('planted'); throw new Error('boom')</script></body></html>"
    )
    res = R.browser_check(bad, timeout=30)
    assert any("planted" in e for e in res["errors"]) and any("boom" in e for e in res["errors"])
    assert any(u.startswith("http://127.0.0.1:9/") for u in res["requests"])
    assert res["images"]["broken"] == 2
