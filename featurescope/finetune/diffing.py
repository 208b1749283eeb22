"""`featurescope finetune-diff`: the feature that moved (Wang et al. 2025) in a finished `finetune-shift` run.

Reads the run's kept activations (``*/activations/acts.safetensors``: each model's mean residual over its own answer,
or its last prompt token, on the evaluation questions), encodes them with an SAE at one of the run's layers, and
per trait (pure maths in :mod:`featurescope.finetune.diff`):

1. selects the latent that rose most after the trait's strong fine-tune of the selection seed, relative to the
   neutral control fine-tune of that seed, on the even-indexed evaluation questions;
2. on the odd-indexed (held-out) questions of the trait and the *other* fine-tunes, correlates its increase with the
   trait expression, against density-matched random latents;
3. tests whether it fires more on questionable- than benign-character passages (shipped pairs), same null;
4. steers the base model with its decoder direction (alpha = a fraction of the residual norm) and ablates it
   (clamped to 0, SAE error kept) in the trait's strong fine-tune of another seed: the judged trait expression
   against the same edit with random latents.

Writes ``OUT/summary.json``, ``latents.jsonl`` (per fine-tune increases), ``passages.jsonl`` (per pair),
``steering.jsonl`` (per question and condition) and ``diff.png``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..configs import Config
from ..errors import FeaturescopeError
from ..evidence.nulls import control_evidence
from ..features.steer import density_matched, latent_edit_hook
from ..judges.choose import get_judge
from ..posttrain import decoder_layers
from ..runs import write_summary
from ..saes import load_sae
from ..store import write_jsonl
from . import diff
from .config import FinetuneShiftConfig
from .data import load_set, read_passages
from .run import ACTS, TraitProbe, judged_answers, load_hf, load_probes


@dataclasses.dataclass(frozen=True)
class FinetuneDiffConfig(Config):
    sae: str = ""  # SAE folder / shipped name / release, at one of the run's layers
    position: str = "response"  # "response": mean over the model's own answer; "prompt": last prompt token
    traits: tuple[str, ...] = ()  # default: every trait of the run
    selection_seed: int = 0  # the fine-tunes of this seed select the latent; the others measure it
    n_top: int = 10  # moved latents listed per trait
    n_controls: int = 50  # density-matched random latents (correlation and passage nulls)
    n_edit_controls: int = 3  # random latents steered / ablated the same way
    steer_fracs: tuple[float, ...] = (0.25, 0.5)  # steering norms, as fractions of the mean residual norm
    passages: str | None = None  # JSONL of {id, questionable, benign} (default: the shipped pairs)
    seed: int = 0


# --------------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------------
def sae_layer(sae: Any) -> int:
    hook = str(sae.cfg.metadata.hook_name)
    parts = hook.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or parts[2] != "hook_resid_post":
        raise FeaturescopeError(
            f"SAE hook {hook!r}: model diffing reads residual activations (blocks.L.hook_resid_post)"
        )
    return int(parts[1])


def read_acts(path: Path, key: str) -> tuple[torch.Tensor, list[str]]:
    if not path.exists():
        raise FeaturescopeError(f"{path} is missing: this model's activations were not kept (rerun finetune-shift)")
    t = load_file(str(path))
    if key not in t:
        have = sorted(t)
        raise FeaturescopeError(f"{path} has no {key!r} (has {have}): choose an SAE at one of the run's layers")
    with safe_open(str(path), "pt") as f:
        qs = json.loads((f.metadata() or {}).get("questions", "[]"))
    return t[key].float(), qs


@torch.no_grad()
def encode(sae: Any, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    dev = sae.W_dec.device
    return torch.cat([sae.encode(x[i : i + batch].to(dev)).float().cpu() for i in range(0, len(x), batch)])


@torch.no_grad()
def passage_latents(hf: Any, tok: Any, sae: Any, texts: Sequence[str], layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(per passage mean latent activation over its tokens after the first, all those tokens' latents)."""
    means, toks = [], []
    dev = next(hf.parameters()).device
    for t in texts:
        ids = tok(t, return_tensors="pt").input_ids.to(dev)
        h = hf(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1][0, 1:].float()
        z = encode(sae, h)
        means.append(z.mean(0))
        toks.append(z)
    return torch.stack(means), torch.cat(toks)


# --------------------------------------------------------------------------------------------------------------
# edits on an HF model
# --------------------------------------------------------------------------------------------------------------
@contextmanager
def layer_edit(hf: Any, layer: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Apply ``fn`` to the hidden states leaving decoder layer ``layer`` (= TL ``blocks.L.hook_resid_post``) on every
    forward pass inside the block (prompt and each generated token)."""

    def hook(module: Any, inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)

    handle = decoder_layers(hf)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def edited_expression(
    hf: Any, tok: Any, probe: TraitProbe, judge: Any, cfg: FinetuneShiftConfig, edit: Callable | None, layer: int
) -> list[dict[str, Any]]:
    """The run's judged answers (same samples, temperature, seeds) on ``probe.questions``, with ``edit`` applied."""
    if edit is None:
        return judged_answers(hf, tok, [probe], judge, cfg)
    with layer_edit(hf, layer, edit):
        return judged_answers(hf, tok, [probe], judge, cfg)


def per_question(rows: Sequence[dict[str, Any]], questions: Sequence[str]) -> np.ndarray:
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["question"], []).append(float(r["trait_score"]))
    return np.array([np.mean(by[q]) for q in questions])


def load_adapter(base_hf: Any, folder: Path) -> Any:
    if not (folder / "adapter_model.safetensors").exists():
        raise FeaturescopeError(f"{folder}: no adapter (adapters are not committed; rerun that fine-tune)")
    from peft import PeftModel  # heavy: peft (~3-5 s, with transformers)

    return PeftModel.from_pretrained(copy.deepcopy(base_hf), str(folder)).eval()


# --------------------------------------------------------------------------------------------------------------
# the experiment
# --------------------------------------------------------------------------------------------------------------
def run_finetune_diff(
    run_dir: str | Path,
    cfg: FinetuneDiffConfig,
    out_dir: str | Path | None = None,
    *,
    model: tuple[Any, Any] | None = None,
    sae: Any = None,
    judge: Any = None,
    edits: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Model diffing over a `finetune-shift` run folder (module docstring); ``edits=False`` skips steering and
    ablation (no generation)."""
    t0 = time.time()
    run = Path(run_dir)
    out = Path(out_dir) if out_dir else run / "diff"
    if not (run / "config.json").exists():
        raise FeaturescopeError(f"{run} is not a finetune-shift run folder (no config.json)")
    rcfg = FinetuneShiftConfig.from_dict(json.loads((run / "config.json").read_text()), where=str(run / "config.json"))
    if cfg.position not in ("response", "prompt"):
        raise FeaturescopeError(f"position must be 'response' or 'prompt', not {cfg.position!r}")
    if sae is None:
        if not cfg.sae:
            raise FeaturescopeError("finetune-diff needs an SAE (--sae)")
        sae = load_sae(cfg.sae)
    layer = sae_layer(sae)
    hf, tok = model if model is not None else load_hf(rcfg.model, progress)
    hf.eval()
    probes = load_probes(rcfg, hf.config.hidden_size, hf.config.num_hidden_layers, rcfg.model)
    traits = cfg.traits or tuple(p.trait.name for p in probes)
    key = f"{cfg.position}.{layer}"

    # latents of every model on every evaluation question
    base_x, questions = read_acts(run / "base" / ACTS, key)
    z_base = encode(sae, base_x)
    runs: list[dict[str, Any]] = []
    for f in sorted((run / "finetunes").glob("*/result.json")):
        res = json.loads(f.read_text())
        x, qs = read_acts(f.parent / ACTS, key)
        if qs != questions:
            raise FeaturescopeError(f"{f.parent}: evaluated on other questions than the base model")
        runs.append({"name": f.parent.name, "set": res["set"], "seed": res["seed"], "z": encode(sae, x), "res": res})
    if not runs:
        raise FeaturescopeError(f"{run} has no finished fine-tunes with kept activations")
    sets = {r["set"]: load_set(r["set"], rcfg.data) for r in runs}
    sel_idx, held_idx = diff.split_halves(len(questions))  # every trait's list: selection / held-out halves

    # passages: firing density (for matched controls) and per-pair means
    pairs = read_passages(cfg.passages)
    zq, tq = passage_latents(hf, tok, sae, [p["questionable"] for p in pairs], layer)
    zb, tb = passage_latents(hf, tok, sae, [p["benign"] for p in pairs], layer)
    density = diff.firing_density(torch.cat([tq, tb]))

    results: dict[str, Any] = {"layer": layer, "position": cfg.position, "n_finetunes": len(runs), "traits": {}}
    latent_rows: list[dict[str, Any]] = []
    passage_rows: list[dict[str, Any]] = []
    steer_rows: list[dict[str, Any]] = []
    offsets, k = {}, 0
    for p in probes:
        offsets[p.trait.name] = (k, k + len(p.questions))
        k += len(p.questions)
    for t in traits:
        probe = next((p for p in probes if p.trait.name == t), None)
        if probe is None:
            raise FeaturescopeError(f"trait {t!r} is not in this run (has {[p.trait.name for p in probes]})")
        a, b = offsets[t]
        meas = [i for i in held_idx if a <= i < b]  # this trait's held-out questions, never used to select
        target = _pick(runs, sets, t, cfg.selection_seed)
        control = next((r for r in runs if r["set"] == "neutral" and r["seed"] == cfg.selection_seed), None)
        inc_t = diff.latent_increase(target["z"][sel_idx], z_base[sel_idx])
        inc_c = diff.latent_increase(control["z"][sel_idx], z_base[sel_idx]) if control else None
        top = diff.moved_latents(inc_t, inc_c, cfg.n_top)
        latent = top[0]
        controls = density_matched(density, latent, cfg.n_controls, exclude=top, seed=cfg.seed)
        others = [r for r in runs if r is not target and r is not control]
        incs = torch.stack([diff.latent_increase(r["z"][meas], z_base[meas]) for r in others])
        expr = [float(np.mean([r["res"]["expression"][t][i - a] for i in meas])) for r in others]
        corr = diff.increase_expression_evidence(incs, expr, latent, controls, seed=cfg.seed)
        pas = diff.passage_evidence(zq, zb, latent, controls, seed=cfg.seed)
        for r, e, row in zip(others, expr, incs):
            latent_rows.append(
                {"trait": t, "finetune": r["name"], "set": r["set"], "seed": r["seed"], "latent": latent,
                 "increase": float(row[latent]), "expression": e,
                 "control_increases": [round(float(row[j]), 5) for j in controls]}
            )  # fmt: skip
        for pr, q_, b_ in zip(pairs, zq[:, latent].tolist(), zb[:, latent].tolist()):
            passage_rows.append({"trait": t, "id": pr["id"], "latent": latent, "questionable": q_, "benign": b_})
        tr = {
            "latent": latent,
            "selected_on": {"finetune": target["name"], "control": control["name"] if control else None},
            "top_latents": [
                {
                    "latent": j,
                    "increase": float(inc_t[j]),
                    "control_increase": float(inc_c[j]) if inc_c is not None else None,
                }
                for j in top
            ],
            "questions": {"selection (all traits)": len(sel_idx), "held out (this trait)": len(meas)},
            "density": float(density[latent]),
            "controls": controls,
            "increase_vs_expression": corr.to_dict() | {"line": corr.line(), "n_finetunes": len(others)},
            "passages": pas.to_dict() | {"line": pas.line(), "n_pairs": len(pairs)},
            "persona_vector_r": _vector_r(run, t),
        }
        if edits:
            tr["edits"] = _edits(
                hf, tok, sae, rcfg, cfg, probe, judge, layer, latent, controls[: cfg.n_edit_controls],
                [questions[i] for i in meas], run, runs, sets, t, steer_rows, progress,
            )  # fmt: skip
        results["traits"][t] = tr
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "latents.jsonl", latent_rows)
    write_jsonl(out / "passages.jsonl", passage_rows)
    if edits:
        write_jsonl(out / "steering.jsonl", steer_rows)
    figures = [_figure(out, latent_rows, results)]
    write_summary(
        out,
        "finetune-diff",
        inputs={"run": str(run), "config": cfg.to_dict(), "run_config": rcfg.to_dict()},
        results=results,
        timings={"total": time.time() - t0},
        figures=figures,
    )
    return results


def _strongest(runs: Sequence[dict[str, Any]], sets: dict[str, Any], trait: str, seed: Any) -> list[dict[str, Any]]:
    """The trait's own fine-tunes whose seed passes ``seed`` (a predicate), strong before mild."""
    own = [r for r in runs if sets[r["set"]].trait == trait and seed(r["seed"])]
    return sorted(own, key=lambda r: 0 if sets[r["set"]].intensity == "strong" else 1)


def _pick(runs: Sequence[dict[str, Any]], sets: dict[str, Any], trait: str, seed: int) -> dict[str, Any]:
    """The trait's strongest own fine-tune of the selection seed (strong before mild)."""
    own = _strongest(runs, sets, trait, lambda s: s == seed)
    if not own:
        raise FeaturescopeError(f"no finished {trait} fine-tune of seed {seed} with kept activations to select on")
    return own[0]


def _vector_r(run: Path, trait: str) -> Any:
    s = run / "summary.json"
    if not s.exists():
        return None
    c = json.loads(s.read_text())["results"].get("correlation", {}).get(trait)
    return c.get("line") if c else None


def _edits(
    hf: Any, tok: Any, sae: Any, rcfg: FinetuneShiftConfig, cfg: FinetuneDiffConfig, probe: TraitProbe, judge: Any,
    layer: int, latent: int, controls: Sequence[int], questions: Sequence[str], run: Path,
    runs: Sequence[dict[str, Any]], sets: dict[str, Any], trait: str, rows: list[dict[str, Any]], progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """Steer the base model with the latent's decoder direction, ablate it in a fine-tune of another seed; each
    against the same edit with ``controls``. Effects per held-out question of the trait's judged expression."""
    if judge is None:
        judge = get_judge(rcfg.judge)
    pr = dataclasses.replace(probe, questions=tuple(questions))
    base = json.loads((run / "base" / "result.json").read_text())
    norm = float(base["residual_norm"].get(str(layer), 0.0)) or float(np.mean(list(base["residual_norm"].values())))

    def measure(model: Any, edit: Callable | None, cond: str, j: int | None) -> np.ndarray:
        got = edited_expression(model, tok, pr, judge, rcfg, edit, layer)
        for r in got:
            rows.append(
                {
                    "trait": trait,
                    "condition": cond,
                    "latent": j,
                    **{k: r[k] for k in ("question", "sample", "trait_score", "coherence", "answer")},
                }
            )
        return per_question(got, questions)

    out: dict[str, Any] = {"questions": len(questions), "controls": list(controls), "residual_norm": norm}
    bar = tqdm(total=1 + len(cfg.steer_fracs) * (1 + len(controls)) + 2 + len(controls), desc=f"edits {trait}",
               disable=not progress)  # fmt: skip
    plain = measure(hf, None, "base", None)
    bar.update()
    steer: dict[str, Any] = {}
    for frac in cfg.steer_fracs:
        alpha = frac * norm
        real = measure(hf, latent_edit_hook(sae, latent, mode="add", alpha=alpha), f"steer {frac}", latent) - plain
        bar.update()
        nulls = []
        for j in controls:
            nulls.append(measure(hf, latent_edit_hook(sae, j, mode="add", alpha=alpha), f"steer {frac}", j) - plain)
            bar.update()
        ev = control_evidence(
            f"steering +{frac} x norm", real, np.mean(nulls, 0), len(controls), "random latents, same norm", cfg.seed
        )
        steer[str(frac)] = ev.to_dict() | {"line": ev.line("+.1f"), "alpha": alpha}
    out["steering"] = steer
    other = _strongest(runs, sets, trait, lambda s: s != cfg.selection_seed)  # the ablated fine-tune: another seed
    if other and (run / "finetunes" / other[0]["name"] / "adapter").exists():
        ft = load_adapter(hf, run / "finetunes" / other[0]["name"] / "adapter")
        unedited = measure(ft, None, f"finetuned {other[0]['name']}", None)
        bar.update()
        real = measure(ft, latent_edit_hook(sae, latent, mode="clamp", value=0.0), "ablate", latent) - unedited
        bar.update()
        nulls = []
        for j in controls:
            nulls.append(measure(ft, latent_edit_hook(sae, j, mode="clamp", value=0.0), "ablate", j) - unedited)
            bar.update()
        ev = control_evidence("ablation", real, np.mean(nulls, 0), len(controls), "random latents ablated", cfg.seed)
        out["ablation"] = ev.to_dict() | {"line": ev.line("+.1f"), "finetune": other[0]["name"]}
    else:
        out["ablation"] = {"skipped": "no adapter of another seed's fine-tune of this trait"}
    bar.close()
    return out


def _figure(out: Path, rows: Sequence[dict[str, Any]], results: dict[str, Any]) -> str:
    import matplotlib  # heavy: matplotlib (~0.5 s)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib (~0.5 s)

    traits = list(results["traits"])
    fig, axes = plt.subplots(1, len(traits), figsize=(4.2 * len(traits), 3.6), squeeze=False)
    for ax, t in zip(axes[0], traits):
        sel = [r for r in rows if r["trait"] == t]
        x = [r["increase"] for r in sel]
        y = [r["expression"] for r in sel]
        ax.scatter(x, y, s=18)
        for r in sel:
            ax.annotate(r["set"], (r["increase"], r["expression"]), fontsize=6, alpha=0.7)
        ev = results["traits"][t]["increase_vs_expression"]
        e = ev["estimate"]
        ax.set_title(f"{t}: latent {results['traits'][t]['latent']}\nr = {e['value']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("latent increase after fine-tuning (held-out questions)")
        ax.set_ylabel(f"{t} expression")
    fig.tight_layout()
    fig.savefig(out / "diff.png", dpi=110)
    plt.close(fig)
    return "diff.png"
