"""Assistant axis: collection (drives a model; writes to disk when given a folder)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import einops
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from ..capture import capture, default_hooks, stop_layer
from ..distributed.tasks import capture_on_pool, generate_chunk, generate_on_pool
from ..errors import FeaturescopeError
from ..formatting import FormattedPrompt, Message, format_conversation, pad_batch
from ..models import Model
from ..store import ActivationStore
from .judges import AxisConfig, build_jobs, keep_mask, role_judge
from .pca import project, unit
from .roles import RoleLibrary, load_role_library
from .vector import AssistantAxis


def _hash(x: Any) -> str:
    return hashlib.sha256(json.dumps(x, sort_keys=True, default=str).encode()).hexdigest()[:16]


def generate_cached(
    model: Model,
    conversations: Sequence[Sequence[Message]],
    *,
    path: str | Path | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    chunk: int = 256,
    progress: bool = True,
    pool: Any = None,
) -> list[str]:
    """Batched generation of one answer per conversation, written chunk by chunk to ``path`` (JSONL) so that an
    interrupted run resumes where it stopped. The file starts with a header naming the request; a file written
    for another request is refused. Conversations are ordered by length first (less padding).

    ``pool`` (a :class:`featurescope.distributed.WorkerPool`): the chunks run on its Ray workers (the same chunks
    and seeds, so greedy answers equal a single-process run's); this process alone writes ``path``."""
    convs = [list(c) for c in conversations]
    request = {
        "model": model.info.name,
        "weights": model.info.weights_sha256,
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "temperature": temperature,
        "seed": seed,
        "batch_size": batch_size,
        "conversations": _hash([[(m.role, m.content) for m in c] for c in convs]),
    }
    if getattr(model.info, "dtype", "float32") != "float32":
        request["dtype"] = model.info.dtype  # (float32 requests keep the header older runs wrote)
    done: dict[int, str] = {}
    p = Path(path) if path is not None else None
    if p is not None and p.exists():
        lines = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
        if not lines or lines[0].get("request") != request:
            raise FeaturescopeError(
                f"{p} holds generations for a different request (model, settings or prompts); "
                "use another folder or delete the file to start over"
            )
        done = {int(r["i"]): r["response"] for r in lines[1:]}
    elif p is not None:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"request": request}) + "\n")
    order = sorted((i for i in range(len(convs)) if i not in done), key=lambda i: sum(len(m.content) for m in convs[i]))
    bar = tqdm(total=len(convs), initial=len(done), desc=f"generate {model.name}", unit="answer", disable=not progress)
    chunks = [
        (
            order[c0 : c0 + chunk],
            [convs[i] for i in order[c0 : c0 + chunk]],
            {
                "max_new_tokens": max_new_tokens,
                "do_sample": do_sample,
                "temperature": temperature,
                "seed": seed + c0,
                "batch_size": batch_size,
            },
        )
        for c0 in range(0, len(order), chunk)
    ]

    def record(idx: Sequence[int], rows_in: list[dict[str, Any]]) -> None:
        rows = []
        for i, r in zip(idx, rows_in):
            done[i] = r["response"]
            rows.append(json.dumps({"i": i, **r}))
        if p is not None:
            with open(p, "a") as f:
                f.write("\n".join(rows) + "\n")
                f.flush()
        bar.update(len(idx))

    if pool is not None:
        generate_on_pool(pool, chunks, record, dtype=model.info.dtype)
    else:
        for idx, cs, kw in chunks:
            record(idx, generate_chunk(model, cs, kw, model.info.dtype))
    bar.close()
    return [done[i] for i in range(len(convs))]


def token_projections(
    model: Model,
    prompts: Sequence[FormattedPrompt],
    directions: Float[Tensor, "h d"],
    hooks: Sequence[str],
    *,
    batch_size: int = 8,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
    progress: bool = False,
) -> list[Float[Tensor, "pos h"]]:
    """Per-token projection of each prompt's activations at ``hooks[k]`` onto the unit ``directions[k]``, computed
    inside the hooks (no activation is kept). Returns one ``[len(prompt), len(hooks)]`` tensor per prompt."""

    if len(hooks) != directions.shape[0]:
        raise ValueError(f"{len(hooks)} hooks but {directions.shape[0]} directions")
    hooks = [model.check_hook(h) for h in hooks]
    units = unit(directions).to(model.device)
    tok = model.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    stop = stop_layer(hooks, model.n_layers)
    out: list[Tensor | None] = [None] * len(prompts)
    for b0 in tqdm(range(0, len(order), batch_size), desc="project", disable=not progress):
        idx = order[b0 : b0 + batch_size]
        toks, _, lens = pad_batch([prompts[i] for i in idx], pad_id)
        got: dict[int, Tensor] = {}

        def mk(k: int) -> Callable:
            def fn(act: Tensor, hook: Any = None) -> None:
                got[k] = einops.einsum(act.detach().float(), units[k], "b p d, d -> b p").cpu()

            return fn

        kw: dict[str, Any] = {"return_type": None}
        if stop is not None:
            kw["stop_at_layer"] = stop
        with torch.inference_mode():
            model.tl.run_with_hooks(
                toks.to(model.device), fwd_hooks=list(fwd_hooks) + [(h, mk(k)) for k, h in enumerate(hooks)], **kw
            )
        P = torch.stack([got[k] for k in range(len(hooks))], -1)
        for j, i in enumerate(idx):
            out[i] = P[j, : int(lens[j])]
    return [x for x in out if x is not None]


def format_all(model: Model, convs: Sequence[Sequence[Message]]) -> list[FormattedPrompt]:

    return [format_conversation(model, list(c)) for c in convs]


def collect_axis(
    model: Model,
    library: RoleLibrary | None = None,
    config: AxisConfig = AxisConfig(),
    *,
    judge: Any = "auto",
    out_dir: str | Path | None = None,
    roles: Sequence[str] | None = None,
    responses: Sequence[str] | None = None,
    hooks: Sequence[str] | None = None,
    progress: bool = True,
    pool: Any = None,
) -> tuple[AssistantAxis, list[dict[str, Any]]]:
    """Generate (or take) the answers of every role and of the default Assistant, judge role adherence, capture
    activations at every layer and build the :class:`AssistantAxis`.

    With ``out_dir``, generations (``generations.jsonl``) and activations (``activations/``, an ActivationStore)
    stream to disk and an interrupted call resumes; ``responses.jsonl`` lists every job with its answer and score.
    ``responses`` (one per job of :func:`build_jobs`) skips generation - e.g. to read a base checkpoint on the
    post-trained model's answers. ``pool`` (a :class:`featurescope.distributed.WorkerPool` of the same model):
    generation chunks and capture shards run on its Ray workers; this process writes every file. Returns (axis,
    rows)."""

    lib = library or load_role_library()
    jobs = build_jobs(lib, config, roles)
    hooks = list(hooks) if hooks is not None else default_hooks(model)
    out = Path(out_dir) if out_dir is not None else None
    t0 = time.time()
    convs = [j.messages() for j in jobs]
    rj = role_judge(judge)  # before generating: a dead judge endpoint fails here, not after every answer
    if responses is None:
        responses = generate_cached(
            model.cast(config.generation_dtype),
            convs,
            path=out / "generations.jsonl" if out else None,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
            do_sample=config.do_sample,
            temperature=config.temperature,
            seed=config.seed,
            chunk=config.chunk,
            progress=progress,
            pool=pool,
        )
        source = "generated"
    else:
        if len(responses) != len(jobs):
            raise FeaturescopeError(
                f"{len(responses)} responses given for {len(jobs)} jobs (same library and config "
                "as the run that produced them?)"
            )
        source = "given"
    t_gen = time.time() - t0
    role_idx = [i for i, j in enumerate(jobs) if j.condition == "role"]
    scores = [3] * len(jobs)
    t = time.time()
    if role_idx:
        s = rj.score_roles([jobs[i] for i in role_idx], [responses[i] for i in role_idx])
        for i, x in zip(role_idx, s):
            scores[i] = int(x)
    t_judge = time.time() - t
    usable = [bool(r.strip()) for r in responses]
    if not any(usable[i] for i, j in enumerate(jobs) if j.condition == "default"):
        raise FeaturescopeError("every default-Assistant answer is empty; raise max_new_tokens or check the model")
    keep, used = keep_mask(jobs, scores, usable, config.min_score, config.min_kept)
    live = [i for i in range(len(jobs)) if usable[i]]
    t = time.time()
    formatted = format_all(model, [convs[i] + [Message("assistant", responses[i])] for i in live])
    store = ActivationStore(out / "activations" / config.reduction, shard_size=config.shard_size) if out else None
    cap_model = model.cast(config.capture_dtype)
    if pool is not None:
        if store is None:
            raise FeaturescopeError("a distributed collection writes its activations to a store: give out_dir")
        acts = capture_on_pool(
            pool,
            cap_model,
            formatted,
            hooks,
            store,
            reduction=config.reduction,
            batch_size=config.batch_size,
            dtype=config.dtype,
            progress=progress,
        )
    else:
        acts = capture(
            cap_model,
            formatted,
            hooks,
            reduction=config.reduction,
            batch_size=config.batch_size,
            store=store,
            dtype=config.dtype,
            progress=progress,
        )
    X = einops.rearrange(acts.stacked().float(), "l n d -> n l d")
    t_cap = time.time() - t
    live_jobs = [jobs[i] for i in live]
    is_def = torch.tensor([j.condition == "default" for j in live_jobs])
    role_list = [r for r in dict.fromkeys(j.role for j in jobs if j.condition == "role")]
    have = [r for r in role_list if any(j.role == r and keep[i] for i, j in enumerate(jobs))]
    dropped = [r for r in role_list if r not in have]
    ridx = {r: k for k, r in enumerate(have)}
    role_rows = [k for k, j in enumerate(live_jobs) if j.condition == "role" and j.role in ridx]
    role_ids = torch.tensor([ridx[live_jobs[k].role] for k in role_rows], dtype=torch.long)
    role_keep = torch.tensor([bool(keep[live[k]]) for k in role_rows])
    cats = [lib.role(r).category if r in lib.names else "?" for r in have]
    extra = {
        "n_jobs": len(jobs),
        "n_default": int(is_def.sum()),
        "n_role_responses": len(role_rows),
        "n_kept": int(role_keep.sum()),
        "judge": rj.name,
        "score_threshold_used": used,
        "dropped_roles": dropped,
        "config": config.to_dict(),
        "responses": source,
        "questions": lib.select_questions(config.n_questions),
        "timings": {"generate": t_gen, "judge": t_judge, "capture": t_cap},
        "score_counts": {str(s_): sum(1 for i in role_idx if scores[i] == s_) for s_ in range(4)},
    }
    axis = AssistantAxis.from_activations(
        X[role_rows],
        role_ids,
        X[is_def],
        hooks=hooks,
        role_names=have,
        role_categories=cats,
        keep=role_keep,
        model=model.name,
        stage=model.stage,
        kind=config.reduction,
        extra=extra,
    )
    # per-token default projections (capping thresholds), from the default responses' response tokens
    t = time.time()
    def_prompts = [formatted[k] for k in range(len(live_jobs)) if bool(is_def[k])]
    tp = token_projections(cap_model, def_prompts, axis.vectors, hooks, batch_size=config.batch_size)
    toks = torch.cat([p[pr.response_mask] for p, pr in zip(tp, def_prompts)])
    axis.token_quantiles = torch.quantile(toks.double(), torch.linspace(0, 1, 101, dtype=torch.double), dim=0).T.float()
    axis.extra["timings"]["token_quantiles"] = time.time() - t
    rows = []
    pos = {i: k for k, i in enumerate(live)}
    for i, j in enumerate(jobs):
        rows.append(
            {
                **j.to_dict(),
                "response": responses[i],
                "score": scores[i],
                "kept": bool(keep[i]),
                **(
                    {"projection_mid": float(project(X[pos[i], axis.middle_layer], axis.vectors[axis.middle_layer]))}
                    if i in pos
                    else {}
                ),
            }
        )
    if out is not None:
        with open(out / "responses.jsonl", "w") as f:
            f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    return axis, rows
