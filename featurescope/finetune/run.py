"""`featurescope finetune-shift`: does the shift of a model's activations along a persona vector, caused by LoRA
fine-tuning, predict how much the trait is expressed afterwards (Chen et al. 2025, r = 0.76-0.97)? Does a narrow
flawed set raise broad trait expression (emergent misalignment, Betley et al. 2025)? Does preventative steering
keep the trait down? When does the shift appear during training?

Layout of a run folder (every file written atomically; a killed run resumes where it stopped)::

    config.json                 the config (a resumed run with another config is refused, naming both)
    base/result.json            the model before fine-tuning: projections and trait expression
    base/answers.jsonl          its judged answers to the evaluation questions
    finetunes/SET-sSEED/        result.json, answers.jsonl; adapter/, activations/ (git-ignored)
    preventative/ARM-sSEED/     the preventative-steering arms (steer, random) of one set
    data/SET.json               the dataset's projection difference, measured before training
    summary.json, *.png         correlations with intervals and nulls, the emergent-misalignment table, figures
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import posttrain
from ..axis import AssistantAxis
from ..errors import FeaturescopeError
from ..formatting import format_conversation
from ..judges.choose import get_judge
from ..models import OFFLINE_MODELS, OFFLINE_PREFIX, load_offline_hf
from ..models.load import merge_adapter
from ..models.registry import adapter_path
from ..persona import PersonaVector
from ..posttrain import PosttrainConfig, collate, ensure_chat_template, generate_answers, sft_example, sft_loss
from ..runs import write_summary
from ..store import atomic_save_tensors, write_json, write_jsonl
from ..traits import Trait, load_trait
from . import measure
from .config import FinetuneShiftConfig
from .data import Example, FinetuneSet, check_disjoint, load_set
from .results import FinetuneShiftResult
from .summary import figures_for, summarise


# --------------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TraitProbe:
    """A trait with its persona vector at one layer and its evaluation questions."""

    trait: Trait
    vector: torch.Tensor  # (d,) raw
    layer: int
    path: str
    questions: tuple[str, ...]


ACTS = "activations/acts.safetensors"  # per model folder: kept for model diffing, git-ignored


def parse_located(spec: str, what: str) -> tuple[str, int]:
    """``PATH@LAYER`` -> (PATH, LAYER)."""
    m = re.fullmatch(r"(.+)@(-?\d+)", spec)
    if not m:
        raise FeaturescopeError(
            f"{what} {spec!r}: expected PATH@LAYER (e.g. runs/evil/evil.response_mean.safetensors@10)"
        )
    return m.group(1), int(m.group(2))


def load_probes(cfg: FinetuneShiftConfig, d_model: int, n_layers: int, model_name: str) -> list[TraitProbe]:
    given: dict[str, str] = {}
    for v in cfg.vectors:
        if "=" not in v:
            raise FeaturescopeError(f"--vector {v!r}: expected TRAIT=PATH@LAYER")
        t, rest = v.split("=", 1)
        given[t] = rest
    probes = []
    for t in cfg.traits:
        if t not in given:
            raise FeaturescopeError(
                f"no persona vector for trait {t!r} on {model_name}: extract one (featurescope persona extract --trait "
                f"{t} --model {model_name} --out runs/{t}) and pass --vector {t}=runs/{t}/{t}.response_mean.safetensors@LAYER"
            )
        path, layer = parse_located(given[t], f"--vector {t}")
        pv = PersonaVector.load(path)
        if pv.trait != t:
            raise FeaturescopeError(f"{path}: a {pv.trait} vector given for {t!r}")
        if pv.d_model != d_model:
            raise FeaturescopeError(f"{path}: a {pv.d_model}-wide vector (model {pv.model}) for a {d_model}-wide model")
        if pv.model and pv.model != model_name:
            raise FeaturescopeError(f"{path}: a vector of {pv.model}, not of {model_name}")
        if not 0 <= layer < n_layers:
            raise FeaturescopeError(f"--vector {t}: layer {layer} outside 0..{n_layers - 1}")
        trait = load_trait(t)
        qs = tuple(trait.eval_questions[: cfg.n_eval_questions])
        probes.append(TraitProbe(trait, pv.at(layer).float(), layer, path, qs))
    return probes


# --------------------------------------------------------------------------------------------------------------
# model-side measurements (HF model, peft or not)
# --------------------------------------------------------------------------------------------------------------
def _device(hf: Any) -> torch.device:
    return next(hf.parameters()).device


@torch.no_grad()
def last_prompt_acts(hf: Any, tok: Any, questions: Sequence[str], layers: Sequence[int], batch_size: int = 16):
    """Residual stream after each block in ``layers`` at the last prompt token (chat template, generation prompt
    added) of each question: ``{layer: (n, d)}``."""
    hf.eval()
    out: dict[int, list[torch.Tensor]] = {L: [] for L in layers}
    prompts = [
        format_conversation(tok, [{"role": "user", "content": q}], kind="chat", add_generation_prompt=True).tokens
        for q in questions
    ]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        n = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), n), pad, dtype=torch.long)
        att = torch.zeros((len(chunk), n), dtype=torch.long)
        for j, p in enumerate(chunk):  # left padding: the last prompt token is at -1 for every row
            ids[j, n - len(p) :] = p
            att[j, n - len(p) :] = 1
        hs = hf(input_ids=ids.to(_device(hf)), attention_mask=att.to(_device(hf)), output_hidden_states=True)
        for L in layers:
            out[L].append(hs.hidden_states[L + 1][:, -1].float().cpu())
    return {L: torch.cat(v) for L, v in out.items()}


@torch.no_grad()
def response_acts_at(
    hf: Any, tok: Any, pairs: Sequence[tuple[str, str]], layers: Sequence[int]
) -> dict[int, torch.Tensor]:
    """Mean residual (after each block in ``layers``) over the response tokens of each (question, answer) in the
    chat template: ``{layer: (n, d)}``, one forward pass per pair."""
    hf.eval()
    rows: dict[int, list[torch.Tensor]] = {L: [] for L in layers}
    for q, a in pairs:
        fp = format_conversation(
            tok, [{"role": "user", "content": q}, {"role": "assistant", "content": a or "..."}], kind="chat"
        )
        hs = hf(input_ids=fp.tokens[None].to(_device(hf)), output_hidden_states=True).hidden_states
        m = fp.response_mask
        for L in layers:
            h = hs[L + 1][0]
            rows[L].append(h[m].float().mean(0).cpu() if m.any() else h[-1].float().cpu())
    return {L: torch.stack(v) for L, v in rows.items()}


def response_acts(hf: Any, tok: Any, pairs: Sequence[tuple[str, str]], layer: int) -> torch.Tensor:
    """Mean residual (after block ``layer``) over the response tokens of each (question, answer): ``(n, d)``."""
    return response_acts_at(hf, tok, pairs, [layer])[layer]


def judged_answers(
    hf: Any, tok: Any, probes: Sequence[TraitProbe], judge: Any, cfg: FinetuneShiftConfig
) -> list[dict[str, Any]]:
    """``cfg.samples`` sampled answers per evaluation question of every trait, judged for that trait."""
    rows: list[dict[str, Any]] = []
    for p in probes:
        for s in range(cfg.samples):
            ans = generate_answers(
                hf,
                tok,
                [[{"role": "user", "content": q}] for q in p.questions],
                kind="chat",
                device=str(_device(hf)),
                max_new_tokens=cfg.max_new_tokens,
                batch_size=cfg.batch_size_eval,
                sample_seed=s,
                temperature=cfg.temperature,
            )
            texts = [a["text"] for a in ans]
            scores = judge.score_many(p.trait, list(p.questions), texts)
            for q, a, sc in zip(p.questions, texts, scores):
                rows.append(
                    {
                        "trait": p.trait.name,
                        "question": q,
                        "sample": s,
                        "answer": a,
                        "trait_score": sc.trait,
                        "coherence": sc.coherence,
                    }  # fmt: skip
                )
    return rows


def expression(rows: Sequence[dict[str, Any]], trait: str, questions: Sequence[str]) -> list[float]:
    """Per evaluation question (in ``questions`` order): the mean trait score of its sampled answers."""
    sel = [r for r in rows if r["trait"] == trait]
    by_q = measure.per_question_means([r["trait_score"] for r in sel], [r["question"] for r in sel])
    return [by_q[q] for q in questions]


def measure_model(
    hf: Any, tok: Any, probes: Sequence[TraitProbe], judge: Any, cfg: FinetuneShiftConfig, axis: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Projections (per trait, per question) at the last prompt token, axis position, and judged answers."""
    res: dict[str, Any] = {"projections": positions(hf, tok, probes, cfg, axis)}
    rows = judged_answers(hf, tok, probes, judge, cfg)
    res["expression"] = {p.trait.name: expression(rows, p.trait.name, p.questions) for p in probes}
    res["coherence"] = {
        p.trait.name: float(np.mean([r["coherence"] for r in rows if r["trait"] == p.trait.name])) for p in probes
    }
    return res, rows


def positions(
    hf: Any, tok: Any, probes: Sequence[TraitProbe], cfg: FinetuneShiftConfig, axis: Any
) -> dict[str, list[float]]:
    """Per trait: the last-prompt projection on its unit vector for each of its evaluation questions; with an axis,
    ``axis``: the projection of every evaluation question on the unit Assistant axis."""
    layers = sorted({p.layer for p in probes} | ({axis[1]} if axis is not None else set()))
    all_q = [q for p in probes for q in p.questions]
    acts = last_prompt_acts(hf, tok, all_q, layers, cfg.batch_size_eval)
    out: dict[str, list[float]] = {}
    k = 0
    for p in probes:
        n = len(p.questions)
        out[p.trait.name] = measure.projections(acts[p.layer][k : k + n], p.vector).tolist()
        k += n
    if axis is not None:
        out["axis"] = measure.projections(acts[axis[1]], axis[0]).tolist()
    return out


@torch.no_grad()
def save_activations(
    hf: Any, tok: Any, probes: Sequence[TraitProbe], rows: Sequence[dict[str, Any]], axis: Any, path: Path
) -> None:
    """Keep the model's activations on the evaluation questions for later model diffing (SAE latents before vs
    after, ``featurescope finetune-shift --diff``): at every probe / axis layer, ``prompt.L`` = the last prompt
    token of each question (every trait's questions, in probe order) and ``response.L`` = the mean over the
    response tokens of the model's own first sampled answer to it. Written atomically; git-ignored (``activations/``)."""
    layers = sorted({p.layer for p in probes} | ({axis[1]} if axis is not None else set()))
    qs = [q for p in probes for q in p.questions]
    tensors: dict[str, torch.Tensor] = {}
    for L, a in last_prompt_acts(hf, tok, qs, layers).items():
        tensors[f"prompt.{L}"] = a.half().contiguous()
    first = {}
    for r in rows:
        if r["sample"] == 0:
            first.setdefault((r["trait"], r["question"]), r["answer"])
    pairs = [(q, first.get((p.trait.name, q), "")) for p in probes for q in p.questions]
    for L, a in response_acts_at(hf, tok, pairs, layers).items():
        tensors[f"response.{L}"] = a.half().contiguous()
    atomic_save_tensors(path, tensors, metadata={"questions": json.dumps(qs)})


@torch.no_grad()
def heldout_loss(model: Any, tok: Any, examples: Sequence[Example], max_len: int) -> float:
    model.eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    exs = [sft_example(tok, e.messages(), max_len) for e in examples]
    tot, n = 0.0, 0
    for i in range(0, len(exs), 8):
        b = {k: t.to(_device(model)) for k, t in collate(exs[i : i + 8], pad).items()}
        w = int((b["labels"][:, 1:] != -100).sum())
        tot += float(sft_loss(model, b["input_ids"], b["attention_mask"], b["labels"])) * w
        n += w
    return tot / max(n, 1)


# --------------------------------------------------------------------------------------------------------------
# the experiment
# --------------------------------------------------------------------------------------------------------------
def _check_resume(out: Path, cfg: FinetuneShiftConfig) -> None:
    f = out / "config.json"
    mine = cfg.to_dict()
    if f.exists():
        theirs = json.loads(f.read_text())
        diff = {k: (theirs.get(k), mine.get(k)) for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k)}
        # extending the run (more sets or seeds) is fine; anything else would mix two experiments
        for k in ("sets", "seeds"):
            diff.pop(k, None)
        if diff:
            sides = "; ".join(f"{k}: run has {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
            raise FeaturescopeError(f"{out} holds a run with another config ({sides}); use a new --out")
    write_json(f, mine)


def _train_config(cfg: FinetuneShiftConfig, seed: int, gemma: bool) -> Any:
    return PosttrainConfig(
        base=cfg.model,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        max_len=cfg.max_len,
        lora_r=cfg.lora_r,
        lora_alpha=2 * cfg.lora_r,
        warmup_steps=cfg.warmup_steps,
        seed=seed,
        steer_alpha=1.0,  # the steering vector passed in is already scaled
        train_tokens=("<start_of_turn>", "<end_of_turn>") if gemma else (),
    )


def finetune_one(
    base_hf: Any,
    tok: Any,
    train: FinetuneSet,
    heldout: FinetuneSet,
    cfg: FinetuneShiftConfig,
    seed: int,
    folder: Path,
    probes: Sequence[TraitProbe],
    judge: Any,
    axis: Any,
    *,
    steer: tuple[torch.Tensor, int] | None = None,
    track: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """LoRA-train a copy of ``base_hf`` on ``train`` and measure it; resumable (a finished ``result.json`` is
    returned as is). Checkpoint projections every ``cfg.checkpoint_every`` steps when ``track``."""
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.time()
    hf = copy.deepcopy(base_hf)
    examples = [sft_example(tok, e.messages(), cfg.max_len) for e in train.examples]
    checkpoints: list[dict[str, Any]] = []

    def on_step(step: int, model: Any) -> None:
        if track and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            checkpoints.append({"step": step, "projections": positions(model, tok, probes, cfg, axis)})

    gemma = "gemma" in cfg.model
    tmp = folder / ".adapter.partial"
    model, info = posttrain.train_adapter(
        hf, tok, examples, _train_config(cfg, seed, gemma), tmp, device=str(_device(hf)), steer=steer,
        progress=progress, on_step=on_step,
    )  # fmt: skip
    if track and cfg.checkpoint_every and (not checkpoints or checkpoints[-1]["step"] != info["steps"]):
        checkpoints.append({"step": info["steps"], "projections": positions(model, tok, probes, cfg, axis)})
    res, rows = measure_model(model, tok, probes, judge, cfg, axis)
    res.update(
        set=train.name.split(":")[0],
        seed=seed,
        steps=info["steps"],
        final_loss=float(np.mean(info["losses"][-5:])) if info["losses"] else float("nan"),
        losses=info["losses"],
        heldout_loss=heldout_loss(model, tok, heldout.examples, cfg.max_len),
        n_train=len(train),
        checkpoints=checkpoints,
        seconds=round(time.time() - t0, 1),
    )
    write_jsonl(folder / "answers.jsonl", rows)
    save_activations(model, tok, probes, rows, axis, folder / ACTS)
    final = folder / "adapter"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)  # the adapter appears whole or not at all
    write_json(done, res)
    return res


def data_projection(
    hf: Any, tok: Any, s: FinetuneSet, probes: Sequence[TraitProbe], cfg: FinetuneShiftConfig, path: Path
) -> dict[str, Any]:
    """Projection difference of a dataset on every trait's vector, before any training: the training responses
    vs the model's own greedy responses to the same questions (first ``n_projection_examples`` examples)."""
    if path.exists():
        return json.loads(path.read_text())
    exs = s.examples[: cfg.n_projection_examples]
    own = generate_answers(
        hf, tok, [[{"role": "user", "content": e.question}] for e in exs], kind="chat", device=str(_device(hf)),
        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size_eval,
    )  # fmt: skip
    res: dict[str, Any] = {"set": s.name, "n": len(exs)}
    for p in probes:
        a = response_acts(hf, tok, [(e.question, e.answer) for e in exs], p.layer)
        b = response_acts(hf, tok, [(e.question, o["text"]) for e, o in zip(exs, own)], p.layer)
        res[p.trait.name] = measure.projection_difference(a, b, p.vector).to_dict()
    write_json(path, res)
    return res


def load_hf(name: str, progress: bool = True) -> tuple[Any, Any]:
    """(HF causal LM, tokenizer) of a full post-trained checkpoint: an offline package (``offline:...``), a local
    folder or a hub name (fp32; LoRA is trained on top)."""
    if name.startswith(OFFLINE_PREFIX):
        key = name[len(OFFLINE_PREFIX) :]
        if key not in OFFLINE_MODELS:
            raise FeaturescopeError(f"unknown offline model {name!r}; known: {', '.join(OFFLINE_MODELS)}")
        spec = OFFLINE_MODELS[key]
        if spec.base:  # an adapter (our SFT Gemma): merged into its base, then fine-tuned like a full checkpoint
            hf, tok, _ = load_offline_hf(OFFLINE_MODELS[spec.base], torch.float32, progress)
            return merge_adapter(hf, adapter_path(spec)), tok
        hf, tok, _ = load_offline_hf(spec, torch.float32, progress)
        return hf, tok
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers (~1 s)

    try:
        return AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32), AutoTokenizer.from_pretrained(name)
    except OSError as e:
        raise FeaturescopeError(f"cannot load {name!r} as a Hugging Face checkpoint: {e}") from e


def run_finetune_shift(
    cfg: FinetuneShiftConfig,
    out_dir: str | Path,
    *,
    device: str | None = None,
    progress: bool = True,
    model: tuple[Any, Any] | None = None,
    judge: Any = None,
    train: bool = True,
) -> FinetuneShiftResult:
    """The whole experiment (see the module docstring). ``model``: an (HF causal LM, tokenizer) pair to use instead
    of loading ``cfg.model`` (tests, or a checkpoint loaded by other means); ``judge``: instead of ``cfg.judge``.
    ``train=False``: summarise the fine-tunes finished so far (a long run still going, or stopped), training
    nothing; the summary says how many of the planned fine-tunes it covers. Returns a
    :class:`FinetuneShiftResult` (read by key as the dict it used to be; ``summary.json`` holds its
    ``to_dict()``)."""
    t0 = time.time()
    out = Path(out_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sets = {name: load_set(name, cfg.data) for name in cfg.sets}
    if cfg.preventative_set and cfg.preventative_set not in sets:
        sets[cfg.preventative_set] = load_set(cfg.preventative_set, cfg.data)
    if model is None:
        hf, tok = load_hf(cfg.model, progress)
    else:
        hf, tok = model
    tok = ensure_chat_template(tok)
    hf.to(device).eval()
    n_layers, d_model = hf.config.num_hidden_layers, hf.config.hidden_size
    probes = load_probes(cfg, d_model, n_layers, cfg.model)
    check_disjoint(list(sets.values()), [q for p in probes for q in p.questions])
    axis = None
    if cfg.axis:
        apath, alayer = parse_located(cfg.axis, "--axis")
        ax = AssistantAxis.load(apath)
        if ax.vectors.shape[-1] != d_model:
            raise FeaturescopeError(f"{apath}: a {ax.vectors.shape[-1]}-wide axis for a {d_model}-wide model")
        axis = (ax.vectors[ax.hooks.index(f"blocks.{alayer}.hook_resid_post")].float(), alayer)
    _check_resume(out, cfg)
    if judge is None:
        judge = get_judge(cfg.judge)
    timings: dict[str, float] = {}

    # before
    t = time.time()
    if (out / "base" / "result.json").exists():
        base = json.loads((out / "base" / "result.json").read_text())
        if train and not (out / "base" / ACTS).exists():  # a run begun before activations were kept
            rows = [json.loads(x) for x in (out / "base" / "answers.jsonl").read_text().splitlines() if x.strip()]
            save_activations(hf, tok, probes, rows, axis, out / "base" / ACTS)
    elif not train:
        raise FeaturescopeError(f"{out} has no measured base model yet: nothing to summarise")
    else:
        base, rows = measure_model(hf, tok, probes, judge, cfg, axis)
        with torch.no_grad():
            acts = last_prompt_acts(hf, tok, [q for p in probes for q in p.questions], [p.layer for p in probes])
        base["residual_norm"] = {str(L): float(a.norm(dim=-1).mean()) for L, a in acts.items()}
        write_jsonl(out / "base" / "answers.jsonl", rows)
        save_activations(hf, tok, probes, rows, axis, out / "base" / ACTS)
        write_json(out / "base" / "result.json", base)
    timings["base"] = time.time() - t

    # projection difference of each dataset, before training
    t = time.time()
    datap = {
        name: data_projection(hf, tok, s, probes, cfg, out / "data" / f"{name}.json")
        for name, s in tqdm(sets.items(), desc="data projection", disable=not progress)
        if train or (out / "data" / f"{name}.json").exists()
    }
    timings["data_projection"] = time.time() - t

    # fine-tunes
    t = time.time()
    runs: list[dict[str, Any]] = []
    # seed-major: every set once before any set twice, so a run stopped early already spans all the sets
    jobs = [(name, seed) for seed in cfg.seeds for name in cfg.sets]
    for name, seed in tqdm(jobs, desc="fine-tunes", disable=not progress):
        if not train and not (out / "finetunes" / f"{name}-s{seed}" / "result.json").exists():
            continue
        tr, held = sets[name].split(cfg.n_heldout, seed=0)
        tr = tr.head(cfg.n_train)
        runs.append(
            finetune_one(
                hf,
                tok,
                tr,
                held,
                cfg,
                seed,
                out / "finetunes" / f"{name}-s{seed}",
                probes,
                judge,
                axis,
                progress=progress,
            )  # fmt: skip
        )
    timings["finetunes"] = time.time() - t

    # preventative steering on one trait-expressing set
    prevent: list[dict[str, Any]] = []
    t = time.time()
    if cfg.preventative_set:
        s = sets[cfg.preventative_set]
        probe = next((p for p in probes if p.trait.name == s.trait), None)
        if probe is None:
            raise FeaturescopeError(f"preventative set {s.name} needs a persona vector for {s.trait!r}")
        norm = base["residual_norm"][str(probe.layer)]
        scale = cfg.preventative_alpha * norm
        tr, held = s.split(cfg.n_heldout, seed=0)
        tr = tr.head(cfg.n_train)
        for seed in cfg.seeds:
            g = torch.Generator().manual_seed(1000 + seed)
            rnd = torch.randn(d_model, generator=g)
            for arm, v in (("steer", measure.unit(probe.vector)), ("random", measure.unit(rnd))):
                if not train and not (out / "preventative" / f"{arm}-s{seed}" / "result.json").exists():
                    continue
                r = finetune_one(
                    hf, tok, tr, held, cfg, seed, out / "preventative" / f"{arm}-s{seed}", probes, judge, axis,
                    steer=((v * scale).to(device), probe.layer), track=False, progress=progress,
                )  # fmt: skip
                r["arm"] = arm
                prevent.append(r)
    timings["preventative"] = time.time() - t

    result = summarise(cfg, [p.trait.name for p in probes], base, runs, datap, prevent, axis is not None)
    result = result.with_done(len(runs), len(jobs), len(prevent))
    results = result.to_dict()
    figures = figures_for(out, cfg, probes, base, runs, results, axis is not None)
    timings["total"] = time.time() - t0
    write_summary(
        out,
        "finetune-shift",
        inputs={"config": cfg.to_dict(), "vectors": {p.trait.name: {"path": p.path, "layer": p.layer} for p in probes}},
        results=results,
        timings=timings,
        figures=figures,
    )
    return result
