"""Report: provenance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .html import esc, fmt, get
from .records import Run, as_run


def _model_str(m: Any) -> str | None:
    if isinstance(m, Mapping):
        name = m.get("name") or m.get("model")
        if not name:
            return None
        extra = [str(m[k]) for k in ("stage",) if m.get(k)]
        if m.get("adapter"):
            extra.append(f"adapter {m['adapter']}")
        return f"{name} ({', '.join(extra)})" if extra else str(name)
    if isinstance(m, str):
        return m
    if isinstance(m, (list, tuple)) and m:
        parts = [_model_str(x) for x in m]
        return ", ".join(p for p in parts if p) or None
    return None


def _sae_str(x: Any, sae_id: Any = None) -> str | None:
    if isinstance(x, Mapping):
        name = x.get("name") or x.get("release") or x.get("path")
        if not name:
            return None
        extra = [f"d_sae {x['d_sae']}"] if x.get("d_sae") else []
        if x.get("trained_on"):
            extra.append(f"trained on {x['trained_on']}")
        return f"{name} ({', '.join(extra)})" if extra else str(name)
    if isinstance(x, str) and x:
        return x + (f" / {sae_id}" if sae_id else "")
    return None


def _hooks_str(v: Any) -> str | None:
    """A hook, a layer number, a list of them or a comma-separated string of layers, as hook names."""
    if v is None or v == "" or v == []:
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, int) or (isinstance(v, str) and v.strip().isdigit()):
        return f"blocks.{int(v)}.hook_resid_post"
    if isinstance(v, str) and "," in v:
        parts = [x.strip() for x in v.split(",") if x.strip()]
        if parts and all(x.isdigit() for x in parts):
            return _hooks_str([int(x) for x in parts])
        return v
    if isinstance(v, (list, tuple)):
        hs = [_hooks_str(x) or str(x) for x in v]
        return ", ".join(hs[:6]) + (f" ... ({len(hs)} hooks)" if len(hs) > 6 else "")
    return str(v)


def _stage_of(m: Any) -> str | None:
    if isinstance(m, Mapping):
        st = m.get("stage")
        if st and m.get("adapter"):
            return f"{st} (adapter)"
        return str(st) if st else None
    return None


def provenance(run: Run | Mapping[str, Any]) -> dict[str, str]:
    """What produced a run: ``model`` (name and stage), ``stage``, ``layer`` (hook), ``sae``, ``data`` and
    ``created``, read from well-known keys of its inputs and results ('-' when the run names none)."""
    r = as_run(run)
    inp, res, cmd = r.inputs, r.results, r.command
    cfg: Mapping[str, Any] = inp["config"] if isinstance(inp.get("config"), Mapping) else {}
    models: list[str] = []
    stages: list[str] = []
    for k in ("model", "base_model", "post_model", "models"):
        s = _model_str(inp.get(k))
        if s:
            pre = "base: " if k == "base_model" else "post: " if k == "post_model" else ""
            models.append(pre + s)
            st = _stage_of(inp.get(k))
            if st:
                stages.append(pre + st)
    if isinstance(inp.get("model"), str) and isinstance(inp.get("stage"), str) and inp["stage"]:
        # e.g. `axis analyze`: the axis file names its model and stage as strings
        models[0] = f"{inp['model']} ({inp['stage']})"
        stages.append(inp["stage"])
    if cmd == "demo":  # per-model info (with its stage) lives in the results
        for name, v in res.items():
            st = get(v, "info", "stage")
            if st:
                stages.append(f"{name}: {st}")
    if not models:
        for k in ("base", "post", "model"):
            s = _model_str(cfg.get(k))
            if s:
                models.append(s + (" (base checkpoint)" if k == "base" else ""))
    if cmd == "posttrain":
        stages = [
            "base -> post-trained (LoRA SFT adapter"
            + (", and one with preventative steering)" if cfg.get("steer_vector") else ")")
        ]
    if cmd == "axis compare":
        models = [f"base axis {inp.get('base', '?')}", f"post axis {inp.get('post', '?')}"]
        stages = ["base vs post-trained"]
    if not stages and cmd == "stages":
        stages = ["base vs post-trained"]
    layer = None
    if cmd == "persona run" and res.get("chosen_layer") is not None:
        layer = f"blocks.{res['chosen_layer']}.hook_resid_post (chosen by steering effect)"
    if cmd == "posttrain":
        layer = "all layers (LoRA)" + (
            f"; preventative steering at blocks.{cfg['steer_layer']}.hook_resid_post"
            if cfg.get("steer_vector") and cfg.get("steer_layer") is not None
            else ""
        )
    for src, k in ((inp, "hook"), (res, "hook"), (inp, "layer"), (inp, "hooks"), (inp, "layers")):
        if layer is None:
            layer = _hooks_str(src.get(k))
    if layer is None and cmd == "sae train" and res:
        layer = ", ".join(k for k in res if str(k).startswith("blocks.")) or None
    if layer is None and get(res, "analysis", "hook"):
        layer = str(res["analysis"]["hook"])
    if layer is None and cmd in ("persona extract", "persona rebuild", "demo", "capture"):
        layer = "every layer (blocks.L.hook_resid_post)"
        if cmd in ("persona extract", "persona rebuild") and res.get("best_separation_layer") is not None:
            layer += f"; best separation at blocks.{res['best_separation_layer']}.hook_resid_post"
    saes = []
    for k in ("sae", "base_sae", "post_sae"):
        s = _sae_str(inp.get(k), inp.get(f"{k}_id"))
        if s:
            saes.append(("base: " if k == "base_sae" else "post: " if k == "post_sae" else "") + s)
    if not saes and cmd == "sae train":
        saes.append(f"trained here: d_sae {inp.get('d_sae', '?')}, k {inp.get('k', '?')} (folders beside this summary)")
    data = []
    if cmd == "features interpret":
        if inp.get("measure") == "assistant-voice":
            data.append("measure: assistant-voice (labelled held-out texts: Assistant speech vs story characters / "
                        "general text; no judge)")  # fmt: skip
        else:
            data.append(f"measure: the '{inp.get('trait')}' judge's score of each latent's top held-out contexts")
    elif inp.get("trait"):
        ex: Mapping[str, Any] = inp["extraction"] if isinstance(inp.get("extraction"), Mapping) else cfg
        nq, npairs = ex.get("n_questions"), ex.get("n_pairs")
        which = (
            f"{nq or 'all'} extraction questions x {npairs or 'all'} instruction pairs"
            if ex and ("n_questions" in ex or "n_pairs" in ex)
            else "extraction questions"
        )
        data.append(f"trait '{inp['trait']}' (shipped {which}; held-out questions for evaluation)")
    if inp.get("vector"):
        data.append(f"vector {inp['vector']}")
    if isinstance(inp.get("axis"), str) and inp.get("axis"):
        data.append(f"axis {inp['axis']}")
    for k, label in (("prompts_file", "prompts"), ("dataset", "dataset"), ("responses", "responses")):
        if inp.get(k):
            data.append(f"{label} {inp[k]}")
    if get(res, "flagging", "dataset"):
        data.append(f"flagging {res['flagging']['dataset']}")
    if inp.get("judge"):
        data.append(f"judge {inp['judge']}")
    if cfg.get("data"):
        data.append(f"dialogues {cfg['data']}" + (f" (held out: {cfg['heldout']})" if cfg.get("heldout") else ""))
    if isinstance(res.get("texts"), Mapping):
        for k, v in res["texts"].items():
            if isinstance(v, Mapping):
                data.append(f"{k}: {v.get('description', '')} ({fmt(v.get('tokens'))} tokens)".replace(" ()", ""))
    if cmd == "sae train":
        corpus = next((v.get("corpus") for v in res.values() if isinstance(v, Mapping) and v.get("corpus")), None)
        if corpus:
            data.append(f"corpus {corpus}")
    if inp.get("heldout_tokens"):
        data.append(f"held-out corpus, {fmt(inp['heldout_tokens'])} tokens")
    if cmd.startswith("axis"):
        n_roles = get(res, "counts", "n_jobs")
        if cfg.get("n_roles") or n_roles:
            data.append(
                f"role library: {cfg.get('n_roles') or 'all'} roles x {cfg.get('n_questions') or 'all'} questions"
            )
        if isinstance(inp.get("scripts"), list) and inp["scripts"]:
            data.append(f"drift scripts {', '.join(map(str, inp['scripts'][:6]))}")
    if isinstance(inp.get("questions"), list):
        data.append(f"{len(inp['questions'])} questions")
    return {
        "model": "; ".join(models) or "-",
        "stage": "; ".join(dict.fromkeys(stages)) or "-",
        "layer": layer or "-",
        "sae": "; ".join(saes) or "none",
        "data": "; ".join(data) or "-",
        "created": str(r.summary.get("created") or "-"),
    }


PROV_KEYS = ("model", "stage", "layer", "sae", "data", "created")


def provenance_text(p: Mapping[str, str]) -> str:
    return (
        f"model: {p['model']} | stage: {p.get('stage', '-')} | layer: {p['layer']} | SAE: {p['sae']} | "
        f"data: {p['data']} | created: {p['created']}"
    )


def provenance_html(p: Mapping[str, str]) -> str:
    items = "".join(f"<span><b>{k}</b> {esc(p.get(k, '-'))}</span>" for k in PROV_KEYS)
    return f"<p class='prov'>{items}</p>"
