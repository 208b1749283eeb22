"""Report: renderers: each is (numbers(run) -> [Number], body(ctx) -> html)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .context import Ctx, Number
from .html import details, flatten, table
from .records import Run


@dataclasses.dataclass
class Renderer:
    section: str
    numbers: Callable[[Run], list[Number]]
    body: Callable[[Ctx], str]
    title: Callable[[Run], str] | None = None


RENDERERS: dict[str, Renderer] = {}

#: Sections in page order: id -> (title, one-line intro).
SECTIONS: dict[str, tuple[str, str]] = {
    "persona": (
        "Persona vectors (Chen et al. 2025)",
        "Per trait: the vector's layer profile, the steering and monitoring curves, data flagging, and its "
        "top SAE features with feature cards.",
    ),
    "saes": (
        "Sparse autoencoders",
        "Training and evaluation of SAEs (fraction of variance explained, CE-loss recovered, L0, dead latents).",
    ),
    "stages": (
        "Training stages: feature reuse across post-training",
        "SAE transfer between base and post-trained activations (Kissane et al.), dictionary matching "
        "(PSM's '< 1% new features'), new and shifted features, persona vectors across stages.",
    ),
    "axis": (
        "The Assistant axis (Lu et al.)",
        "Persona space (PCA of role vectors), role ranking, steering, drift "
        "over multi-turn scripts, activation capping, cross-stage comparison.",
    ),
    "features": (
        "Persona features: shared Assistant / character latents, interpretation scores, crosscoder",
        "SAE latents shared by the Assistant and story characters on paired contexts (against the chance count from "
        "shuffled themes), interpretation scores of a decomposition's top latents against random latents of matched "
        "density, and base / post-trained crosscoders (relative decoder norms, Latent Scaling).",
    ),
    "finetune": (
        "Fine-tuning selects a persona (Chen et al., Betley et al., Wang et al.)",
        "LoRA fine-tunes on trait-expressing, flawed and neutral sets: the shift along persona vectors against trait "
        "expression, emergent misalignment against the neutral control, preventative steering, and the SAE latent "
        "that moved (model diffing) with its controls.",
    ),
    "posttrain": ("Post-training", "LoRA SFT of the base checkpoint into an Assistant and its evaluation."),
    "foundation": (
        "Foundation: demo and captures",
        "Model loading, prompt formats, generation and activation capture.",
    ),
    "other": ("Other runs", "Commands without a dedicated renderer: inputs, results and figures as written."),
}


def register(
    command: str,
    section: str,
    numbers: Callable[[Run], list[Number]],
    body: Callable[[Ctx], str],
    title: Callable[[Run], str] | None = None,
) -> None:
    """Render runs of ``command`` (exact, or a prefix: 'axis' covers 'axis run', 'axis drift', ...) with these
    functions in section ``section`` (a key of :data:`SECTIONS`)."""
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; add it to SECTIONS first")
    RENDERERS[command] = Renderer(section, numbers, body, title)


def renderer_for(command: str) -> Renderer:
    if command in RENDERERS:
        return RENDERERS[command]
    words = command.split()
    for n in range(len(words) - 1, 0, -1):
        key = " ".join(words[:n])
        if key in RENDERERS:
            return RENDERERS[key]
    return GENERIC


def _generic_numbers(run: Run) -> list[Number]:
    return []


def inputs_table(run: Run) -> str:
    rows = [
        (k, v)
        for k, v in flatten(run.inputs, max_items=40)
        if not k.startswith(("model.weights_sha256", "base_model.weights_sha256", "post_model.weights_sha256"))
    ]
    return details("inputs", table(rows, ["input", "value"])) if rows else ""


def tensors_table(run: Run) -> str:
    rows = [
        (f, name, v.get("dtype"), "x".join(map(str, v.get("shape") or [])) or "scalar")
        for f, ts in run.tensors.items()
        for name, v in list(ts.items())[:12]
    ]
    return (
        details(f"tensors ({len(run.tensors)} .safetensors files)", table(rows, ["file", "tensor", "dtype", "shape"]))
        if rows
        else ""
    )


def generic_body(ctx: Ctx) -> str:
    rows = flatten(ctx.run.results, max_items=60)
    out = [inputs_table(ctx.run)]
    if rows:
        out.append(table(rows, ["result", "value"]))
    return "".join(out)


GENERIC = Renderer("other", _generic_numbers, generic_body)
