"""The ``featurescope`` command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import cli_axis, cli_posttrain, cli_report, cli_stages
from .errors import FeaturescopeError


def _read_text(p: Path, what: str) -> str:
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FeaturescopeError(f"{p}: {what} is not UTF-8 text (invalid byte at offset {e.start})") from None
    except OSError as e:
        raise FeaturescopeError(f"{p}: cannot read {what} ({e.strerror})") from None


def _read_prompts(path: str) -> list[Any]:
    """A prompt file: .jsonl (one conversation per line: {"messages": [...]}, a list of messages, or a string),
    .json (a list of those) or .txt (one user prompt per line)."""
    p = Path(path)
    if not p.exists():
        raise FeaturescopeError(f"prompt file {path} does not exist")
    if p.is_dir():
        raise FeaturescopeError(f"{path} is a folder, not a prompt file")
    text = _read_text(p, "the prompt file")
    if p.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FeaturescopeError(f"{path}:{i}: not valid JSON ({e.msg} at column {e.colno})") from None
        return rows
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise FeaturescopeError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(data, list):
            raise FeaturescopeError(f"{path}: expected a JSON list of conversations, got a {type(data).__name__}")
        return data
    return [line for line in text.splitlines() if line.strip()]


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':38} {'stage':13} {'source':16} {'available':13} description")
    for r in rows:
        avail = "yes" if r["installed"] else "no"
        if r["source"] == "offline-package" and r["installed"]:
            avail += " (cached)" if r["converted"] else ""
        print(f"{r['name']:38} {r['stage']:13} {r['source']:16} {avail:13} {r['description']}")
    return 0


def _parse_hooks(model: Any, hooks: str | None, layers: str | None) -> list[str]:
    from .capture import default_hooks

    if hooks:
        return [h.strip() for h in hooks.split(",") if h.strip()]
    if layers:
        if layers == "all":
            return default_hooks(model)
        out = []
        for part in layers.split(","):
            try:
                out.append(model.resid_hook(int(part)))
            except ValueError:
                raise FeaturescopeError(f"--layers: {part!r} is not an integer (use e.g. 3,6,9 or all)") from None
        return out
    return default_hooks(model)


def cmd_capture(args: argparse.Namespace) -> int:
    from .capture import as_prompts, capture
    from .models import load_model
    from .runs import write_summary
    from .store import ActivationStore

    t0 = time.time()
    prompts_raw = _read_prompts(args.prompts)
    if not prompts_raw:
        raise FeaturescopeError(f"{args.prompts} holds no prompts: the prompt set is empty")
    model = load_model(args.model, stage=args.stage, adapter=args.adapter, device=args.device)
    t_load = time.time() - t0
    hooks = _parse_hooks(model, args.hooks, args.layers)
    for h in hooks:
        model.check_hook(h)
    prompts = as_prompts(model, prompts_raw, kind=args.format)
    out = Path(args.out)
    store = ActivationStore(out / "activations", shard_size=args.shard_size)
    t1 = time.time()
    acts = capture(
        model,
        prompts,
        hooks,
        reduction=args.reduction,
        batch_size=args.batch_size,
        store=store,
        dtype=args.dtype,
        progress=not args.quiet,
    )
    t_cap = time.time() - t1
    n_tok = sum(len(p) for p in prompts)
    norms = {h: float(acts[h].float().norm(dim=-1).mean()) for h in hooks}
    path = write_summary(
        out,
        "capture",
        inputs={
            "model": model.info,
            "prompts_file": args.prompts,
            "n_prompts": len(prompts),
            "hooks": hooks,
            "reduction": args.reduction,
            "format": args.format,
            "batch_size": args.batch_size,
            "dtype": args.dtype,
        },
        results={
            "store": str(store.path),
            "n_tokens": n_tok,
            "tokens_per_s": n_tok / max(t_cap, 1e-9),
            "shapes": {h: list(acts[h].shape) for h in hooks},
            "mean_norm": norms,
        },
        timings={"load_model": t_load, "capture": t_cap, "total": time.time() - t0},
    )
    print(
        f"captured {len(prompts)} prompts ({n_tok} tokens) at {len(hooks)} hook(s) in {t_cap:.1f}s "
        f"({n_tok / max(t_cap, 1e-9):.0f} tok/s) -> {store.path}\nsummary: {path}"
    )
    return 0


def cmd_persona(args: argparse.Namespace) -> int:
    from . import plots
    from .judge import default_judge
    from .models import load_model
    from .persona import (
        ExtractionConfig,
        PersonaVector,
        check_flag_rows,
        extract,
        extract_written,
        load_written,
        monitor_correlation,
        projection_difference,
        run_persona,
        steering_sweep,
    )
    from .runs import write_summary
    from .traits import load_trait

    t0 = time.time()
    out = Path(args.out)
    if args.action not in ("extract", "run") and not args.vector:
        raise FeaturescopeError(f"persona {args.action} needs --vector (a file written by `persona extract`)")
    if args.action == "flag" and not args.dataset:
        raise FeaturescopeError("persona flag needs --dataset")
    # Cheap checks before the model loads or anything is generated.
    pv_in = PersonaVector.load(args.vector) if args.vector and args.action != "extract" else None
    flag_rows = check_flag_rows(_read_prompts(args.dataset), args.dataset) if args.action == "flag" else None
    judge = default_judge()  # a configured judge endpoint is checked here, before anything is generated
    model = load_model(args.model)
    if pv_in is not None:
        pv_in.check_fits(
            model,
            model.resid_hook(args.layer) if args.action in ("steer", "monitor", "flag") else None,
            allow_other_model=args.allow_other_model,
        )
    if args.action == "run":
        cfg = ExtractionConfig(
            n_questions=args.n_questions,
            n_pairs=args.n_pairs,
            max_new_tokens=args.max_new_tokens,
            pos_threshold=args.pos_threshold,
            neg_threshold=args.neg_threshold,
            seed=args.seed,
        )
        alphas = [float(a) for a in args.alphas.split(",")]
        layers = [int(x) for x in args.layers.split(",")] if args.layers else None
        res = run_persona(
            model,
            args.trait,
            judge,
            out,
            extraction=cfg,
            layers=layers,
            alpha=args.alpha,
            alphas=alphas,
            n_eval_questions=args.n_eval_questions,
            n_monitor_questions=args.n_monitor_questions,
            **({"flag_dataset": args.dataset} if args.dataset else {}),
        )
        print(
            f"chosen layer {res['chosen_layer']}; monitor r = {res['monitor']['r_samples']:.2f} "
            f"(levels {res['monitor']['r_levels']:.2f}); flagging {res['flagging'].get('per_dataset')}"
        )
    elif args.action == "extract":
        tr = load_trait(args.trait)
        cfg = ExtractionConfig(
            n_questions=args.n_questions,
            n_pairs=args.n_pairs,
            max_new_tokens=args.max_new_tokens,
            pos_threshold=args.pos_threshold,
            neg_threshold=args.neg_threshold,
            seed=args.seed,
        )
        if args.written:
            res = extract_written(model, tr.name, load_written(args.written), source=args.written)
        else:
            res = extract(model, tr, judge, config=cfg, answers_path=out / "answers.jsonl")
        out.mkdir(parents=True, exist_ok=True)
        files = {k: str(v.save(out / f"{tr.name}.{k}.safetensors")) for k, v in res["vectors"].items()}
        (out / "responses.jsonl").write_text(
            "\n".join(json.dumps({k: v for k, v in r.items() if k != "messages"}) for r in res["responses"])
        )
        sep = res["separation"]
        fig = plots.layer_profile(
            out / "layers.png",
            {"Cohen's d (pos vs neg projection)": sep["cohens_d"]},
            f"{tr.name} persona vector on {model.name} ({model.stage}); "
            + (f"written answers {Path(args.written).name}" if args.written else f"judge {judge.name}"),
            "Cohen's d",
        )
        finite = [i for i, d in enumerate(sep["cohens_d"]) if d == d]
        best = max(finite, key=lambda i: sep["cohens_d"][i]) if finite else None
        if best is None:
            print("Cohen's d is undefined at every layer (fewer than 2 kept answers on a side, or no spread)")
        print(
            f"kept {res['counts']['kept_pos']} pos / {res['counts']['kept_neg']} neg of "
            f"{res['counts'].get('generated_per_side', res['counts'].get('written_pairs'))} each "
            f"({'written answers' if args.written else 'generated'})"
            + (f"; best separation at layer {best} (d={sep['cohens_d'][best]:.2f})" if best is not None else "")
        )
        write_summary(
            out,
            "persona extract",
            inputs={
                "model": model.info,
                "trait": tr.name,
                "config": cfg.__dict__,
                "judge": None if args.written else judge.name,
                "written": args.written,
            },
            results={
                "counts": res["counts"],
                "separation": sep,
                "best_separation_layer": best,
                "vector_norms": res["vectors"]["response_mean"].norms,
                "files": files,
            },
            timings=res["timings"],
            figures=[fig],
        )
    elif args.action == "steer":
        v = pv_in
        assert v is not None
        alphas = [float(a) for a in args.alphas.split(",")]
        res = steering_sweep(
            model,
            v,
            v.trait,
            judge,
            hook=args.layer,
            alphas=alphas,
            n_questions=args.n_questions,
            max_new_tokens=args.max_new_tokens,
        )
        out.mkdir(parents=True, exist_ok=True)
        fig = plots.steering_curve(
            out / "steering.png",
            alphas,
            [r["trait_score"] for r in res["rows"]],
            [r["coherence"] for r in res["rows"]],
            f"steering {v.trait} at layer {args.layer} of {model.name} ({model.stage})",
        )
        write_summary(
            out,
            "persona steer",
            inputs={
                "model": model.info,
                "vector": args.vector,
                "layer": args.layer,
                "alphas": alphas,
                "judge": judge.name,
            },
            results=res,
            timings={"total": time.time() - t0},
            figures=[fig],
        )
    elif args.action == "monitor":
        v = pv_in
        assert v is not None
        res = monitor_correlation(
            model, v, v.trait, judge, hook=args.layer, n_questions=args.n_questions, max_new_tokens=args.max_new_tokens
        )
        print(
            f"projection vs trait score: r = {res['r_samples']:.2f} over {res['n']} responses "
            f"(r = {res['r_levels']:.2f} over the {len(res['per_level'])} graded levels); paper: 0.75-0.83"
        )
        write_summary(
            out,
            "persona monitor",
            inputs={"model": model.info, "vector": args.vector, "layer": args.layer, "judge": judge.name},
            results=res,
            timings={"total": time.time() - t0},
        )
    elif args.action == "flag":
        v = pv_in
        assert v is not None and flag_rows is not None
        rows = flag_rows
        hook = model.resid_hook(args.layer)
        res = projection_difference(model, rows, v.at(hook), hook, max_new_tokens=args.max_new_tokens)
        pdiff = res["projection_difference"].tolist()
        by_ds: dict[str, list[float]] = {}
        for r, d in zip(rows, pdiff):
            by_ds.setdefault(str(r.get("dataset", "all")), []).append(d)
        ranking = sorted(((sum(x) / len(x), k) for k, x in by_ds.items()), reverse=True)
        for m_, k in ranking:
            print(f"  {k:24s} mean projection difference {m_:+.3f}")
        write_summary(
            out,
            "persona flag",
            inputs={"model": model.info, "vector": args.vector, "layer": args.layer, "dataset": args.dataset},
            results={
                "per_sample": [
                    {"id": r.get("id"), "dataset": r.get("dataset"), "projection_difference": d}
                    for r, d in zip(rows, pdiff)
                ],
                "per_dataset": {k: v_ for v_, k in ranking},
            },
            timings={"total": time.time() - t0},
        )
    print(f"summary: {out / 'summary.json'}")
    return 0


def cmd_sae(args: argparse.Namespace) -> int:

    from . import corpus
    from .models import load_model
    from .runs import write_summary
    from .saes import compact, evaluate_sae, load_sae, train_saes

    t0 = time.time()
    out = Path(args.out)
    model = load_model(args.model, adapter=args.adapter)
    heldout = corpus.sequences(
        model.tokenizer, "heldout", context_size=args.context, max_sequences=args.eval_sequences, seed=1
    )
    if args.action == "train":
        hooks = [model.resid_hook(int(x)) for x in args.layers.split(",")]
        n_rows = args.training_tokens // (args.context - 1) + 64
        train = corpus.sequences(
            model.tokenizer, "train", context_size=args.context, max_sequences=n_rows, seed=args.seed
        )
        epochs = args.training_tokens / max(train.numel(), 1)
        print(
            f"training {len(hooks)} SAE(s) on {args.training_tokens:,} tokens ({epochs:.1f} passes over the "
            f"{train.numel():,} corpus tokens; {model.name}, hooks {hooks})",
            flush=True,
        )
        t = time.time()
        paths = train_saes(
            model,
            hooks,
            out / "_work",
            tokens=train,
            d_sae=args.d_sae,
            k=args.k,
            training_tokens=args.training_tokens,
            lr=args.lr,
            seed=args.seed,
            batch_size_tokens=args.batch_tokens,
            store_batch_size_prompts=args.store_batch,
            dead_feature_window=args.dead_window,
        )
        t_train = time.time() - t
        evals = {}
        for h, p in paths.items():
            dst = compact(
                p, out / h.replace(".", "_").replace("blocks_", "layer_").replace("_hook_resid_post", "_resid_post")
            )
            sae = load_sae(dst)
            ev = evaluate_sae(sae, model, heldout, h, ce_batches=args.ce_batches)
            ev.update(
                {
                    "training_tokens": args.training_tokens,
                    "training_seconds": round(t_train, 1),
                    "d_sae": args.d_sae,
                    "k": args.k,
                    "architecture": "batchtopk -> jumprelu (inference)",
                    "seed": args.seed,
                    "corpus": corpus.describe_short(),
                    "heldout_tokens": int(heldout.numel()),
                    "lr": args.lr,
                    "corpus_passes": round(epochs, 2),
                    "device": str(model.device),
                    "retrain": f"featurescope sae train --model {args.model} --layers {args.layers} "
                    f"--training-tokens {args.training_tokens} --d-sae {args.d_sae} --k {args.k} "
                    f"--lr {args.lr} --batch-tokens {args.batch_tokens} --dead-window {args.dead_window} "
                    f"--seed {args.seed} "
                    f"--out {args.out}",
                }
            )
            (dst / "eval.json").write_text(json.dumps(ev, indent=2))
            evals[h] = {k: v for k, v in ev.items() if k != "density_hist"}
            print(
                f"{h}: FVE {ev['fraction_variance_explained']:.3f}  CE recovered {ev['ce_loss_recovered']:.3f}  "
                f"L0 {ev['l0']:.1f}  dead {ev['dead_fraction']:.3f}  -> {dst}"
            )
        write_summary(
            out,
            "sae train",
            inputs={
                "model": model.info,
                "layers": args.layers,
                "d_sae": args.d_sae,
                "k": args.k,
                "training_tokens": args.training_tokens,
                "seed": args.seed,
            },
            results=evals,
            timings={"train": t_train, "total": time.time() - t0},
        )
    else:  # eval
        sae = load_sae(args.sae, args.sae_id)
        ev = evaluate_sae(
            sae, model, heldout, args.hook, allow_other_model=args.allow_other_model, ce_batches=args.ce_batches
        )
        print(json.dumps({k: v for k, v in ev.items() if k != "density_hist"}, indent=2))
        write_summary(
            out,
            "sae eval",
            inputs={
                "model": model.info,
                "sae": args.sae,
                "sae_id": args.sae_id,
                "hook": args.hook,
                "heldout_tokens": int(heldout.numel()),
            },
            results=ev,
            timings={"total": time.time() - t0},
        )
    return 0


def _padded_rows(seqs: list, context: int, bos: int | None, pad: int | None):
    """``[n, context]`` rows from token sequences: the last ``context`` tokens (BOS kept first), right-padded."""
    import torch

    pad_id = pad if pad is not None else 0
    out = torch.full((len(seqs), context), pad_id, dtype=torch.long)
    for i, t in enumerate(seqs):
        t = t.tolist()
        if len(t) > context:
            head = t[:1] if bos is not None and t[0] == bos else []
            t = head + t[len(t) - (context - len(head)) :]
        out[i, : len(t)] = torch.tensor(t)
    return out


def cmd_decompose(args: argparse.Namespace) -> int:
    import torch

    from . import corpus, plots
    from .capture import capture
    from .cards import cards_html, make_cards
    from .decompose import decompose
    from .formatting import Message
    from .models import load_model
    from .persona import PersonaVector
    from .runs import write_summary
    from .saes import check_sae, check_sae_folder, load_sae

    t0 = time.time()
    out = Path(args.out)
    pv = PersonaVector.load(args.vector)  # cheap checks first: nothing is loaded or written when one fails
    if Path(args.sae).expanduser().is_dir():
        check_sae_folder(Path(args.sae).expanduser())
    model = load_model(args.model)
    pv.check_fits(model, allow_other_model=args.allow_other_model)
    sae = load_sae(args.sae, args.sae_id)
    hook = check_sae(sae, model, allow_other_model=args.allow_other_model)
    pv.check_fits(model, hook, allow_other_model=args.allow_other_model)
    v = pv.at(hook)
    out.mkdir(parents=True, exist_ok=True)
    pos_acts = neg_acts = None
    resp = Path(args.responses) if args.responses else Path(args.vector).parent / "responses.jsonl"
    if resp.exists():
        rows = [json.loads(x) for x in resp.read_text().splitlines() if x.strip()]
        kept = {
            side: [
                ([Message("system", r["instruction"])] if r.get("instruction") else [])
                + [Message("user", r["question"]), Message("assistant", r["response"])]
                for r in rows
                if r.get("kept") and r["side"] == side
            ]
            for side in ("pos", "neg")
        }
        if kept["pos"] and kept["neg"]:
            a = {side: capture(model, convs, [hook], reduction="all", progress=False) for side, convs in kept.items()}
            pos_acts = a["pos"][hook][a["pos"].role_ids == 3]
            neg_acts = a["neg"][hook][a["neg"].role_ids == 3]
    res = decompose(
        v,
        sae,
        pos_acts=pos_acts,
        neg_acts=neg_acts,
        k=args.k,
        methods=("cosine", "encode", "attribution", "selectivity"),
        max_density=args.max_density if args.max_density > 0 else None,
    )
    tag = f"{pv.trait} vector ({pv.kind}) of {pv.model} at {hook}; SAE {args.sae}"
    fig = plots.layer_profile(
        out / "fraction_explained.png",
        {m: d.fraction_explained.tolist() for m, d in res.items()},
        f"fraction of the vector reconstructed by its top-k features - {tag}",
        "fraction of ||v||^2 explained",
    )
    toks = corpus.sequences(model.tokenizer, "heldout", max_sequences=args.card_sequences, seed=2)
    sources = [(0, "held-out corpus")]
    if pos_acts is not None:  # the trait's own extraction responses: where a persona feature is expected to fire
        from .formatting import format_conversation

        rows_r = _padded_rows(
            [format_conversation(model, c).tokens for side in ("pos", "neg") for c in kept[side]],
            toks.shape[1],
            model.tokenizer.bos_token_id,
            model.tokenizer.pad_token_id,
        )
        sources.append((len(toks), f"{pv.trait} extraction responses (trait-expressing and not)"))
        toks = torch.cat([toks, rows_r])
    top = res.get("attribution", res["cosine"])
    feats, scores = top.indices[: args.cards].tolist(), top.scores[: args.cards].tolist()
    views = {f: top.method for f in feats}
    for name in ("attribution_sparse", "selectivity"):  # these views' top features get cards too
        if name in res:
            sp = res[name]
            for f, sc in zip(sp.indices[: args.cards].tolist(), sp.scores[: args.cards].tolist()):
                if f not in feats:
                    feats.append(f)
                    scores.append(sc)
                    views[f] = name
    cards = make_cards(model, sae, toks, feats, scores=scores, sae_name=str(args.sae), hook=hook, sources=sources)
    (out / "cards.html").write_text("<html><meta charset='utf-8'><body>" + cards_html(cards, tag) + "</body></html>")
    for m, d in res.items():
        print(
            f"{m:18s} top features {[(i, round(x, 3)) for i, x in d.top(5)]}  k for 50%/90% of the vector: "
            f"{d.k_for(0.5)}/{d.k_for(0.9)}"
        )
    write_summary(
        out,
        "decompose",
        inputs={
            "model": model.info,
            "vector": args.vector,
            "sae": args.sae,
            "hook": hook,
            "responses": str(resp) if pos_acts is not None else None,
        },
        results={
            "decompositions": {m: d.to_dict(args.k) for m, d in res.items()},
            "cards": [{**c.to_dict(), "view": views[c.feature]} for c in cards],
        },
        timings={"total": time.time() - t0},
        figures=[fig, "cards.html"],
    )
    print(f"summary: {out / 'summary.json'}; cards: {out / 'cards.html'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(out=Path(args.out), quick=args.quick)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="featurescope", description="Study personas inside language models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    m = sub.add_parser("models", help="list the checkpoints that can be loaded here (offline and online)")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=cmd_models)

    c = sub.add_parser("capture", help="capture activations at chosen hooks into an on-disk store")
    c.add_argument("--model", required=True, help="offline:gemma-3-270m | hub name | local folder")
    c.add_argument("--adapter", help="peft adapter folder to merge into the model")
    c.add_argument("--stage", choices=["base", "post-trained"], help="override the inferred training stage")
    c.add_argument("--prompts", required=True, help=".txt (one user prompt a line), .jsonl or .json conversations")
    c.add_argument("--hooks", help="comma-separated TransformerLens hook names")
    c.add_argument("--layers", help="comma-separated layers (residual stream after each block) or 'all' (default)")
    c.add_argument("--reduction", default="last_prompt", choices=["response_mean", "prompt_mean", "last_prompt", "all"])
    c.add_argument("--format", default="auto", choices=["auto", "chat", "transcript"])
    c.add_argument("--batch-size", type=int, default=16)
    c.add_argument("--shard-size", type=int, default=256, help="prompts per shard of the store")
    c.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    c.add_argument("--device")
    c.add_argument("--out", required=True, help="run folder (summary.json, activations/)")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_capture)

    pe = sub.add_parser("persona", help="persona vectors: run | extract | steer | monitor | flag (Chen et al. 2025)")
    pe.add_argument(
        "action",
        choices=["run", "extract", "steer", "monitor", "flag"],
        help="run = extract, choose the layer, steer, monitor and flag in one go",
    )
    pe.add_argument("--model", default="offline:smollm2-135m-instruct")
    pe.add_argument("--trait", default="evil", help="shipped trait name or path to a trait YAML (extract)")
    pe.add_argument("--vector", help="persona vector .safetensors (steer, monitor, flag)")
    pe.add_argument("--layer", type=int, default=15, help="layer to steer / monitor / flag at")
    pe.add_argument("--alphas", default="-12,-8,-4,0,4,8,12")
    pe.add_argument("--alpha", type=float, default=8.0, help="steering coefficient used to choose the layer (run)")
    pe.add_argument(
        "--layers", help="candidate layers for the layer choice, comma-separated (run; default every other)"
    )
    pe.add_argument("--dataset", help="JSONL of {prompt, response[, dataset]} rows (flag)")
    pe.add_argument(
        "--written",
        help="extract: read the model on written paired answers (JSONL of {question, pos, neg}, "
        "e.g. featurescope/data/traits/evil.written.jsonl) instead of generating them",
    )
    pe.add_argument("--n-questions", type=int, default=None)
    pe.add_argument("--n-pairs", type=int, default=None)
    pe.add_argument("--n-eval-questions", type=int, default=8, help="held-out questions per steering point (run)")
    pe.add_argument("--n-monitor-questions", type=int, default=3, help="questions per graded monitor prompt (run)")
    pe.add_argument("--max-new-tokens", type=int, default=48)
    pe.add_argument("--pos-threshold", type=float, default=50.0)
    pe.add_argument("--neg-threshold", type=float, default=50.0)
    pe.add_argument("--seed", type=int, default=0)
    pe.add_argument(
        "--allow-other-model",
        action="store_true",
        help="use a vector extracted on another checkpoint of the same width (steer, monitor, flag)",
    )
    pe.add_argument("--out", required=True)
    pe.set_defaults(func=cmd_persona)

    sa = sub.add_parser("sae", help="SAEs: train (sae-lens trainer, offline corpus) | eval (any SAE on any model)")
    sa.add_argument("action", choices=["train", "eval"])
    sa.add_argument("--model", default="offline:gemma-3-270m")
    sa.add_argument("--layers", default="6,9", help="residual layers to train SAEs on (train)")
    sa.add_argument("--training-tokens", type=int, default=1_000_000)
    sa.add_argument("--d-sae", type=int, default=4096)
    sa.add_argument("--k", type=int, default=64, help="BatchTopK k (= mean L0)")
    sa.add_argument("--lr", type=float, default=4e-4)
    sa.add_argument("--batch-tokens", type=int, default=1024, help="tokens per SAE training batch (train)")
    sa.add_argument(
        "--dead-window",
        type=int,
        default=50,
        help="steps without firing before a latent counts as dead for the auxiliary loss (train)",
    )
    sa.add_argument(
        "--store-batch", type=int, default=16, help="prompts per model forward pass feeding the SAEs (train)"
    )
    sa.add_argument("--adapter", help="peft adapter folder merged into --model")
    sa.add_argument("--context", type=int, default=128)
    sa.add_argument("--seed", type=int, default=42)
    sa.add_argument("--eval-sequences", type=int, default=128, help="held-out rows of --context tokens for evaluation")
    sa.add_argument("--ce-batches", type=int, default=4, help="batches of 16 held-out rows for CE-loss recovered")
    sa.add_argument("--sae", help="SAE folder, or sae-lens release (eval)")
    sa.add_argument("--sae-id", help="sae-lens SAE id within the release (eval)")
    sa.add_argument("--hook", help="hook to evaluate at (default: the SAE's own)")
    sa.add_argument(
        "--allow-other-model", action="store_true", help="evaluate an SAE trained on another checkpoint (transfer)"
    )
    sa.add_argument("--out", required=True)
    sa.set_defaults(func=cmd_sae)

    dc = sub.add_parser(
        "decompose", help="decompose a persona vector (or any direction file) into SAE features, with cards"
    )
    dc.add_argument("--model", default="offline:gemma-3-270m")
    dc.add_argument("--vector", required=True, help="persona vector .safetensors")
    dc.add_argument("--sae", required=True, help="SAE folder or sae-lens release")
    dc.add_argument("--sae-id")
    dc.add_argument("--responses", help="responses.jsonl of the extraction (default: beside the vector)")
    dc.add_argument("--k", type=int, default=100)
    dc.add_argument("--cards", type=int, default=10, help="feature cards for the top features")
    dc.add_argument("--card-sequences", type=int, default=256, help="held-out corpus rows scanned for card contexts")
    dc.add_argument("--allow-other-model", action="store_true")
    dc.add_argument(
        "--max-density",
        type=float,
        default=0.1,
        help="also rank only features firing on at most this fraction of the response tokens "
        "(view 'attribution_sparse'; 0 = off)",
    )
    dc.add_argument("--out", required=True)
    dc.set_defaults(func=cmd_decompose)

    d = sub.add_parser("demo", help="the end-to-end demo on the offline default models")
    d.add_argument("--out", default="reports/demo")
    d.add_argument("--quick", action="store_true", help="fewer prompts (for tests)")
    d.set_defaults(func=cmd_demo)

    # Sub-commands that live beside their concept's module; each ``cli_<name>.py`` has ``register(sub)``. Imported
    # unconditionally: a missing module is an ImportError, never a silently missing command.
    for plug in (cli_posttrain, cli_stages, cli_axis, cli_report):
        plug.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except FeaturescopeError as e:
        print(f"featurescope {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        where = f" Finished shards and cached answers under {out} are kept;" if out else ""
        print(
            f"\nfeaturescope {args.command}: interrupted.{where} run the same command again to resume.", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
