"""The Assistant axis (Lu et al., "The Assistant Axis", arXiv 2601.10387): persona space, drift and capping.

The method, as implemented here:

1. **Role library** (data, ``featurescope/data/roles/``): >= 120 character archetypes with 5 role-play system
   prompts each, the default-Assistant condition (5 neutral prompts, the first ``""`` = no system prompt), >= 40
   shared questions. A user YAML with the same ``roles:`` schema is merged with the shipped one
   (:func:`load_role_library`). Prompts are formatted per stage by :mod:`featurescope.formatting` (chat template for
   a post-trained checkpoint - a template without a system role, like Gemma's, merges the system prompt into the first
   user turn itself; transcript with a narrator's preface for a base checkpoint).
2. **Role vectors**: every (role, question) pair is asked under one of the role's 5 prompts (``instructions="cycle"``:
   question j of role r uses prompt (j + r) mod 5, so every prompt is used once n_questions >= 5; ``"all"`` asks all
   5) and answered by batched generation. A role judge scores 0-3 how fully the answer stays in role
   (:class:`LLMRoleJudge` with an OpenAI-compatible endpoint, or the offline proxy :class:`EmbeddingRoleJudge`). The
   role vector is the mean activation over response tokens (``response_mean``; ``prompt_mean`` as an option) of the
   answers scoring 3 (falling back to >= 2, then to all answers, for a role with fewer than ``min_kept``; the
   threshold used is recorded per role). All answers are captured (streamed to an
   :class:`featurescope.store.ActivationStore`, resumable), so re-filtering never recomputes activations.
3. **The axis**, per layer: ``axis_L = mean(default-Assistant activations) - mean_r(role vector_r)``; it points
   *toward* the Assistant. Separately, PCA over the role vectors (explained variance, how many PCs reach 70%, PC1
   oriented so that ``cos(axis, PC1) >= 0``), where the default Assistant falls on PC1, roles ranked by projection.
4. **Steering** ``h <- h + alpha * axis_L`` (alpha in units of the axis itself: alpha = 1 moves an activation by the
   whole default-minus-roles gap; alpha > 0 toward the Assistant, alpha < 0 away), measured by the fraction of answers
   to "Who are you?"-style questions that identify as an AI (:func:`identifies_as_ai`) and by the projection of the
   steered answers read back without steering.
5. **Drift**: the mean projection of each Assistant turn onto the unit axis over multi-turn scripts.
6. **Capping** (sign convention): with ``v_hat`` the unit axis (toward the Assistant), drifting away lowers
   ``<h, v_hat>``. Capping keeps the projection from falling below ``tau``::

       h <- h + v_hat * max(tau - <h, v_hat>, 0)        (= h - v_hat * min(<h, v_hat> - tau, 0))

   at a band of middle-to-late layers, with ``tau_L`` the ``percentile`` (default 25th) of the default Assistant's
   own per-token response projections at layer L. Tokens with a norm over ``skip_outliers`` x the median norm of
   their forward pass (attention sinks such as BOS, norms ~100x the rest in Gemma) are left alone.
7. **Across stages**: :func:`compare_axes` (axis cosine per layer, top-3 PC cosines, per-role vector cosines raw and
   centred, where one model's default Assistant falls on the other's axis) and :func:`prefill_test` (steer a base
   checkpoint along an axis; classify its completions of "I am a ..." prefills with the shipped helpful / fantastical
   archetype word lists).

Pure functions over tensors are at the top (:func:`group_means`, :func:`axis_from_means`, :func:`pca`,
:func:`cap_activations`, ...); the functions that drive a model are below them; :func:`run_axis` writes a run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import einops
import torch
import yaml
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .configs import Config
from .errors import DataError, FeaturescopeError, did_you_mean
from .formatting import FormattedPrompt, Message, pad_batch
from .measures import DEFAULT_AI_TERMS, identifies_as_ai, term_regex
from .paper import NUMBERS

ROLES_DIR = Path(__file__).parent / "data" / "roles"
N_INSTRUCTIONS = 5
MIN_ROLES = 120
MIN_QUESTIONS = 40
CATEGORIES = (
    "profession",
    "helper_human",
    "creative",
    "fictional",
    "mythical",
    "creature",
    "ai_good",
    "ai_bad",
    "historical",
    "abstract",
    "antagonist",
)
#: Category groups used to summarise where roles fall on the axis.
GROUPS: dict[str, tuple[str, ...]] = {
    "assistant-like humans": ("profession", "helper_human"),
    "fantastical": ("fictional", "mythical", "creature", "abstract"),
    "AI characters": ("ai_good", "ai_bad"),
    "other": ("creative", "historical", "antagonist"),
}
_NON_ROLE_FILES = {"default.yaml", "questions.yaml", "prefills.yaml", "identity.yaml"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

#: Paper numbers (Lu et al.) quoted next to ours in summaries.
# The paper's numbers, from featurescope.paper (the one home of published numbers); this layout is kept for the
# summaries that already carry it.
PAPER = {
    "pcs_for_70pct": NUMBERS["axis_pcs"].value,
    "axis_pc1_cosine_middle_layer": NUMBERS["axis_pc1"].text,
    "base_vs_instruct_top3_pc_cosines_gemma2_27b": NUMBERS["base_vs_instruct_top3_pc_cosines"].value,
    "base_vs_instruct_role_vector_cosines": NUMBERS["base_vs_instruct_role_vector_cosines"].text,
}


# ================================================================================================================
# Role library (data)
# ================================================================================================================
@dataclasses.dataclass(frozen=True)
class Role(Config):
    name: str
    category: str
    instructions: tuple[str, ...]
    source: str = ""


@dataclasses.dataclass(frozen=True)
class DriftScript(Config):
    """A multi-turn script: fixed user turns; the assistant turns are generated at run time."""

    name: str
    kind: str
    description: str
    expected_drift: str
    user_turns: tuple[str, ...]
    source: str = ""


@dataclasses.dataclass(frozen=True)
class RoleLibrary(Config):
    roles: tuple[Role, ...]
    default_prompts: tuple[str, ...]
    questions: tuple[str, ...]
    prefills: tuple[str, ...] = ()
    helpful_archetypes: tuple[str, ...] = ()
    fantastical_archetypes: tuple[str, ...] = ()
    identity_questions: tuple[str, ...] = ()
    ai_terms: tuple[str, ...] = ()
    scripts: tuple[DriftScript, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.roles]

    def role(self, name: str) -> Role:
        for r in self.roles:
            if r.name == name:
                return r
        raise DataError(f"unknown role {name!r}.{did_you_mean(name, self.names)}")

    def script(self, name: str) -> DriftScript:
        for s in self.scripts:
            if s.name == name:
                return s
        raise DataError(f"unknown drift script {name!r}; have {', '.join(s.name for s in self.scripts)}")

    def category_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.roles:
            out[r.category] = out.get(r.category, 0) + 1
        return out

    def select_roles(self, n: int | None = None, names: Sequence[str] | None = None) -> list[Role]:
        """``names`` if given; else ``n`` roles taken round-robin over categories (file order within a category),
        so a small run still spans assistant-like and fantastical roles; else all."""
        if names:
            return [self.role(x) for x in names]
        if n is None or n >= len(self.roles):
            return list(self.roles)
        if n < 2:
            raise FeaturescopeError("an axis needs at least 2 roles (PCA over role vectors)")
        by_cat: dict[str, list[Role]] = {}
        for r in self.roles:
            by_cat.setdefault(r.category, []).append(r)
        cats = [c for c in CATEGORIES if c in by_cat] + [c for c in by_cat if c not in CATEGORIES]
        out: list[Role] = []
        i = 0
        while len(out) < n:
            for c in cats:
                if i < len(by_cat[c]) and len(out) < n:
                    out.append(by_cat[c][i])
            i += 1
        return out

    def select_questions(self, n: int | None = None) -> list[str]:
        """``n`` questions evenly spread over the list (it is ordered by theme: identity, values, advice, tasks)."""
        return spread(list(self.questions), n)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(c)}</td><td>{k}</td><td>{html.escape(', '.join(r.name for r in self.roles if r.category == c)[:160])}</td></tr>"
            for c, k in self.category_counts().items()
        )
        return (
            f"<div><b>role library</b>: {len(self.roles)} roles x {N_INSTRUCTIONS} instructions, "
            f"{len(self.default_prompts)} default prompts, {len(self.questions)} questions, {len(self.scripts)} "
            f"drift scripts<table><tr><th>category</th><th>roles</th><th>examples</th></tr>{rows}</table></div>"
        )


def spread(items: Sequence[Any], n: int | None) -> list[Any]:
    """``n`` items at evenly spaced indices (all of them when n is None or too large)."""
    items = list(items)
    if n is None or n >= len(items):
        return items
    if n < 1:
        raise ValueError("n must be >= 1")
    return [items[int(i * len(items) / n)] for i in range(n)]


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise DataError(f"role data file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({e})") from e


def _str_list(raw: Any, key: str, where: str, *, allow_empty_items: bool = False) -> tuple[str, ...]:
    v = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise DataError(f"{where}: '{key}' must be a list of strings")
    if not allow_empty_items and not all(x.strip() for x in v):
        raise DataError(f"{where}: '{key}' has an empty entry")
    return tuple(" ".join(x.split()) if x.strip() else "" for x in v)


def parse_roles(raw: Any, source: str = "<dict>") -> list[Role]:
    """Validate a ``{"roles": [{name, category, instructions}, ...]}`` mapping; errors name the file and role."""
    if not isinstance(raw, dict) or not isinstance(raw.get("roles"), list):
        raise DataError(
            f"{source}: a role file must be a mapping with a 'roles:' list of {{name, category, instructions}}"
        )
    out = []
    for i, r in enumerate(raw["roles"]):
        where = f"{source}: role {i + 1}"
        if not isinstance(r, dict):
            raise DataError(f"{where}: must be a mapping with name, category, instructions")
        unknown = set(r) - {"name", "category", "instructions"}
        if unknown:
            raise DataError(f"{where}: unknown field(s) {sorted(unknown)}")
        name = str(r.get("name", "")).strip()
        if not _NAME_RE.match(name):
            raise DataError(f"{where}: name {name!r} must be lowercase snake_case")
        where = f"{source}: role {name!r}"
        cat = str(r.get("category", "")).strip()
        if cat not in CATEGORIES:
            raise DataError(
                f"{where}: unknown category {cat!r}.{did_you_mean(cat, CATEGORIES)} Categories: {', '.join(CATEGORIES)}"
            )
        ins = r.get("instructions")
        if not isinstance(ins, list) or len(ins) != N_INSTRUCTIONS:
            raise DataError(
                f"{where}: 'instructions' must be a list of exactly {N_INSTRUCTIONS} system prompts "
                f"(found {len(ins) if isinstance(ins, list) else type(ins).__name__})"
            )
        if not all(isinstance(x, str) and x.strip() for x in ins):
            raise DataError(f"{where}: every instruction must be a non-empty string")
        norm = [" ".join(x.split()) for x in ins]
        if len(set(x.lower() for x in norm)) != len(norm):
            raise DataError(f"{where}: the {N_INSTRUCTIONS} instructions must be distinct")
        out.append(Role(name=name, category=cat, instructions=tuple(norm), source=source))
    return out


def load_scripts(folder: str | Path = ROLES_DIR / "conversations") -> tuple[DriftScript, ...]:
    folder = Path(folder)
    out = []
    for p in sorted(folder.glob("*.yaml")):
        raw = _read_yaml(p)
        where = str(p)
        if not isinstance(raw, dict):
            raise DataError(f"{where}: a drift script must be a mapping")
        turns = _str_list(raw, "user_turns", where)
        if len(turns) < 2:
            raise DataError(f"{where}: 'user_turns' needs at least 2 turns")
        name = str(raw.get("name", p.stem))
        if name != p.stem:
            raise DataError(f"{where}: name {name!r} must equal the file stem {p.stem!r}")
        out.append(
            DriftScript(
                name=name,
                kind=str(raw.get("kind", "")),
                description=str(raw.get("description", "")),
                expected_drift=str(raw.get("expected_drift", "")),
                user_turns=turns,
                source=where,
            )
        )
    return tuple(out)


def load_role_library(
    extra: str | Path | Sequence[str | Path] = (),
    *,
    folder: str | Path = ROLES_DIR,
    min_roles: int = MIN_ROLES,
    min_questions: int = MIN_QUESTIONS,
) -> RoleLibrary:
    """Load the shipped role library and merge user YAML files into it.

    Role files are ``roles.yaml`` and any other ``*.yaml`` in ``folder`` with a top-level ``roles:`` list, plus
    ``extra`` (a file, or a list of files). A user file may hold ``roles:`` and/or ``questions:`` (appended to the
    shared questions). Role names must be unique across all files. The merged library must have at least
    ``min_roles`` roles and ``min_questions`` questions.
    """
    folder = Path(folder)
    extras = [extra] if isinstance(extra, (str, Path)) else list(extra)
    files = [folder / "roles.yaml"] + sorted(
        p for p in folder.glob("*.yaml") if p.name not in _NON_ROLE_FILES | {"roles.yaml"}
    )
    roles: list[Role] = []
    questions = list(_str_list(_read_yaml(folder / "questions.yaml"), "questions", str(folder / "questions.yaml")))
    sources = []
    for f in files + [Path(e) for e in extras]:
        raw = _read_yaml(f)
        is_extra = f in [Path(e) for e in extras]
        if not isinstance(raw, dict) or ("roles" not in raw and not (is_extra and "questions" in raw)):
            if is_extra:
                found = (
                    f" (it has {', '.join(map(repr, raw))}.{''.join(did_you_mean(str(k), ['roles', 'questions']) for k in raw)})"
                    if isinstance(raw, dict) and raw
                    else ""
                )
                raise DataError(f"{f}: a user role file must have a 'roles:' list (and/or a 'questions:' list){found}")
            continue
        if is_extra:
            unknown = sorted(set(raw) - {"roles", "questions"})
            if unknown:
                hints = "".join(did_you_mean(k, ["roles", "questions"]) for k in unknown)
                raise DataError(
                    f"{f}: unknown top-level key(s) {', '.join(map(repr, unknown))}; a user role file "
                    f"holds only 'roles:' and 'questions:'.{hints}"
                )
        sources.append(str(f))
        if "roles" in raw:
            roles.extend(parse_roles(raw, str(f)))
        if is_extra and "questions" in raw:
            questions.extend(_str_list(raw, "questions", str(f)))
    seen: dict[str, str] = {}
    for r in roles:
        if r.name in seen:
            raise DataError(
                f"role {r.name!r} is defined twice ({seen[r.name]} and {r.source}); names must be unique "
                "across all role files"
            )
        seen[r.name] = r.source
    low = [q.lower() for q in questions]
    dup = sorted({q for q in low if low.count(q) > 1})
    if dup:
        raise DataError(f"repeated question(s): {dup[:3]}")
    if len(roles) < min_roles:
        raise DataError(f"the role library has {len(roles)} roles; at least {min_roles} are needed")
    if len(questions) < min_questions:
        raise DataError(f"the role library has {len(questions)} questions; at least {min_questions} are needed")
    default = _str_list(
        _read_yaml(folder / "default.yaml"), "default_prompts", str(folder / "default.yaml"), allow_empty_items=True
    )
    if not default:
        raise DataError(f"{folder / 'default.yaml'}: no default-Assistant prompts")
    pre_raw = _read_yaml(folder / "prefills.yaml") if (folder / "prefills.yaml").exists() else {}
    id_raw = _read_yaml(folder / "identity.yaml") if (folder / "identity.yaml").exists() else {}
    get = lambda raw, k, where: _str_list(raw, k, where) if isinstance(raw, dict) and k in raw else ()
    return RoleLibrary(
        roles=tuple(roles),
        default_prompts=default,
        questions=tuple(questions),
        prefills=tuple(p for p in (pre_raw.get("prefills") or [])) if isinstance(pre_raw, dict) else (),
        helpful_archetypes=get(pre_raw, "helpful_archetypes", "prefills.yaml"),
        fantastical_archetypes=get(pre_raw, "fantastical_archetypes", "prefills.yaml"),
        identity_questions=get(id_raw, "identity_questions", "identity.yaml"),
        ai_terms=get(id_raw, "ai_terms", "identity.yaml"),
        scripts=load_scripts(folder / "conversations") if (folder / "conversations").is_dir() else (),
        sources=tuple(sources),
    )


# ================================================================================================================
# Text measures
# ================================================================================================================
# The AI-identity detector lives in featurescope.measures (one definition, shared with post-training evaluation).
_DEFAULT_AI_TERMS = DEFAULT_AI_TERMS


def classify_completion(text: str, helpful: Sequence[str], fantastical: Sequence[str], n_words: int = 12) -> str:
    """Label a self-description completion: "helpful", "fantastical", "both" or "other" by whole-word matches of the
    archetype lists in its first ``n_words`` words (that is where "I am a ..." names the speaker)."""
    head = " ".join(re.findall(r"[\w'.-]+", text.lower())[:n_words])
    h = bool(helpful) and bool(term_regex(helpful).search(head))
    f = bool(fantastical) and bool(term_regex(fantastical).search(head))
    return "both" if h and f else "helpful" if h else "fantastical" if f else "other"


def distinct_bigram_ratio(text: str) -> float:
    from .judge import distinct_bigram_ratio as dbr

    return dbr(text)


# ================================================================================================================
# Pure functions over tensors
# ================================================================================================================
def unit(v: Float[Tensor, "*b d"]) -> Float[Tensor, "*b d"]:
    return torch.nn.functional.normalize(v.float(), dim=-1)


def cosine(a: Float[Tensor, "*b d"], b: Float[Tensor, "*b d"]) -> Float[Tensor, "*b"]:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


def project(acts: Float[Tensor, "*n d"], vector: Float[Tensor, " d"]) -> Float[Tensor, "*n"]:
    """Scalar projection onto the unit vector along ``vector``."""
    return acts.float() @ unit(vector)


def group_means(
    acts: Float[Tensor, "n layer d"], groups: Int[Tensor, " n"], n_groups: int, keep: Tensor | None = None
) -> tuple[Float[Tensor, "g layer d"], Int[Tensor, " g"]]:
    """Mean of ``acts`` per group id (rows with ``keep`` False are ignored). Returns (means, counts); a group with
    no rows has a zero mean and count 0."""
    k = torch.ones(len(groups), dtype=torch.bool) if keep is None else keep.bool()
    onehot = torch.nn.functional.one_hot(groups.long(), n_groups).float() * k[:, None].float()  # [n, g]
    counts = onehot.sum(0)
    sums = einops.einsum(onehot, acts.float(), "n g, n l d -> g l d")
    return sums / counts.clamp(min=1)[:, None, None], counts.long()


def axis_from_means(
    default_mean: Float[Tensor, "layer d"], role_vectors: Float[Tensor, "role layer d"]
) -> Float[Tensor, "layer d"]:
    """The Assistant axis per layer: mean default-Assistant activation minus the mean of the role vectors."""
    if role_vectors.shape[0] == 0:
        raise FeaturescopeError("no role vectors: the axis needs at least one role")
    return default_mean.float() - role_vectors.float().mean(0)


@dataclasses.dataclass
class PCAResult:
    components: Float[Tensor, "k d"]  # unit rows, PC1 first
    explained: Float[Tensor, " k"]  # explained-variance ratio of each component
    mean: Float[Tensor, " d"]
    scores: Float[Tensor, "n k"]  # the data's coordinates on the components

    def n_for(self, fraction: float = 0.7) -> int:
        return n_components_for(self.explained, fraction)


def pca(x: Float[Tensor, "n d"], orient: Float[Tensor, " d"] | None = None) -> PCAResult:
    """PCA by SVD of the mean-centred rows. Signs are fixed: PC1 points along ``orient`` when given (so
    ``orient . PC1 >= 0``), every other PC (and PC1 without ``orient``) so that its largest-magnitude loading is
    positive."""
    x = x.double()
    mean = x.mean(0)
    xc = x - mean
    _, s, vt = torch.linalg.svd(xc, full_matrices=False)
    k = min(x.shape[0] - 1, x.shape[1]) if x.shape[0] > 1 else 1
    vt, s = vt[:k], s[:k]
    for i in range(k):
        ref = orient.double() if (i == 0 and orient is not None) else None
        sgn = torch.sign(vt[i] @ ref) if ref is not None else torch.sign(vt[i][vt[i].abs().argmax()])
        if sgn == 0:
            sgn = torch.tensor(1.0, dtype=vt.dtype)
        vt[i] = vt[i] * sgn
    var = s**2
    total = (xc**2).sum()
    explained = var / total if total > 0 else torch.zeros_like(var)
    return PCAResult(components=vt.float(), explained=explained.float(), mean=mean.float(), scores=(xc @ vt.T).float())


def n_components_for(explained: Float[Tensor, " k"], fraction: float = 0.7) -> int:
    """Smallest number of leading components whose explained-variance ratios sum to at least ``fraction``."""
    c = explained.double().cumsum(0)
    hit = (c >= fraction - 1e-9).nonzero()
    return int(hit[0]) + 1 if len(hit) else len(explained)


def percentile_rank(value: float | Tensor, population: Float[Tensor, " n"]) -> float:
    """Fraction of ``population`` strictly below ``value`` (ties count half): 1.0 = above every member."""
    p = population.double()
    v = float(value)
    return float(((p < v).sum() + 0.5 * (p == v).sum()) / max(len(p), 1))


def cap_activations(
    h: Float[Tensor, "... d"], v_hat: Float[Tensor, " d"], tau: float | Tensor, skip: Tensor | None = None
) -> Float[Tensor, "... d"]:
    """Floor the projection of ``h`` on the unit vector ``v_hat`` at ``tau``:
    ``h + v_hat * max(tau - <h, v_hat>, 0)``. Positions where ``skip`` is True are unchanged."""
    proj = h.float() @ v_hat.float()
    lift = (torch.as_tensor(tau, dtype=torch.float32, device=h.device) - proj).clamp(min=0)
    if skip is not None:
        lift = lift * (~skip).float()
    return h + (lift[..., None] * v_hat.float()).to(h.dtype)


def outlier_positions(h: Float[Tensor, "... d"], factor: float | None) -> Tensor | None:
    """Positions whose norm exceeds ``factor`` x the median norm of the batch (attention sinks); None = no guard."""
    if factor is None:
        return None
    n = h.float().norm(dim=-1)
    return n > factor * n.flatten().median()


def turn_spans(role_ids: Int[Tensor, " pos"], role: int = 3) -> list[tuple[int, int]]:
    """(start, end) of every maximal run of ``role`` tokens (assistant turns by default)."""
    r = (role_ids == role).int().tolist()
    spans, start = [], None
    for i, x in enumerate(r + [0]):
        if x and start is None:
            start = i
        elif not x and start is not None:
            spans.append((start, i))
            start = None
    return spans


def default_cap_layers(n_layers: int) -> list[int]:
    """The capping band: the middle to the three-quarter layer (``n//2 .. 3n//4`` inclusive), middle-to-late as in
    the paper (which caps a band of several layers there)."""
    lo, hi = n_layers // 2, max(n_layers // 2, (3 * n_layers) // 4)
    return list(range(lo, hi + 1))


# ================================================================================================================
# The axis object
# ================================================================================================================
@dataclasses.dataclass
class AssistantAxis:
    """The Assistant axis of one model, with the role vectors and default-Assistant statistics behind it.

    ``vectors[i]`` is the (unnormalised) axis at ``hooks[i]``; ``role_vectors[r, i]`` is role r's vector there;
    ``default_projections[j, i]`` is default response j's projection onto the unit axis; ``token_quantiles[i, q]`` is
    the q-th percentile (q = 0..100) of the default Assistant's per-token response projections (for capping)."""

    vectors: Float[Tensor, "layer d"]
    hooks: list[str]
    model: str
    stage: str
    role_names: list[str]
    role_categories: list[str]
    role_vectors: Float[Tensor, "role layer d"]
    role_counts: Int[Tensor, " role"]
    default_mean: Float[Tensor, "layer d"]
    default_projections: Float[Tensor, "n_default layer"]
    token_quantiles: Float[Tensor, "layer 101"] | None = None
    kind: str = "response_mean"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_activations(
        cls,
        role_acts: Float[Tensor, "n layer d"],
        role_index: Int[Tensor, " n"],
        default_acts: Float[Tensor, "m layer d"],
        *,
        hooks: Sequence[str],
        role_names: Sequence[str],
        role_categories: Sequence[str],
        keep: Tensor | None = None,
        model: str = "?",
        stage: str = "?",
        kind: str = "response_mean",
        extra: dict[str, Any] | None = None,
    ) -> AssistantAxis:
        """Role vectors = per-role means over kept rows; axis = mean(default) - mean(role vectors)."""
        rv, counts = group_means(role_acts, role_index, len(role_names), keep)
        ok = counts > 0
        if not bool(ok.all()):
            missing = [n for n, c in zip(role_names, counts.tolist()) if c == 0]
            raise FeaturescopeError(f"role(s) {missing} have no kept responses")
        dm = default_acts.float().mean(0)
        ax = axis_from_means(dm, rv)
        dproj = einops.einsum(default_acts.float(), unit(ax), "m l d, l d -> m l")
        return cls(
            vectors=ax,
            hooks=list(hooks),
            model=model,
            stage=stage,
            role_names=list(role_names),
            role_categories=list(role_categories),
            role_vectors=rv,
            role_counts=counts,
            default_mean=dm,
            default_projections=dproj,
            kind=kind,
            extra=dict(extra or {}),
        )

    # -- indexing -------------------------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.hooks)

    @property
    def middle_layer(self) -> int:
        """Index (into ``hooks``) of the middle layer, the paper's default."""
        return self.n_layers // 2

    def index(self, layer: int | str | None = None) -> int:
        """Position in ``hooks`` of a layer number (its ``blocks.L.hook_resid_post``) or hook name; None = middle."""
        if layer is None:
            return self.middle_layer
        if isinstance(layer, str):
            if layer not in self.hooks:
                raise FeaturescopeError(f"the axis has no {layer!r}; it has {self.hooks[0]} .. {self.hooks[-1]}")
            return self.hooks.index(layer)
        name = f"blocks.{layer % self.n_layers if layer < 0 else layer}.hook_resid_post"
        if name in self.hooks:
            return self.hooks.index(name)
        raise FeaturescopeError(f"the axis has no layer {layer}; it has {self.hooks[0]} .. {self.hooks[-1]}")

    def hook(self, layer: int | str | None = None) -> str:
        return self.hooks[self.index(layer)]

    def at(self, layer: int | str | None = None) -> Float[Tensor, " d"]:
        return self.vectors[self.index(layer)]

    def unit(self, layer: int | str | None = None) -> Float[Tensor, " d"]:
        return unit(self.at(layer))

    @property
    def norms(self) -> list[float]:
        return [float(x) for x in self.vectors.norm(dim=-1)]

    # -- analysis -------------------------------------------------------------------------------------------------
    def role_projections(self, layer: int | str | None = None) -> Float[Tensor, " role"]:
        i = self.index(layer)
        return project(self.role_vectors[:, i], self.vectors[i])

    def default_projection(self, layer: int | str | None = None) -> float:
        i = self.index(layer)
        return float(project(self.default_mean[i], self.vectors[i]))

    def ranked_roles(self, layer: int | str | None = None) -> list[tuple[str, str, float]]:
        """(role, category, projection) from most to least Assistant-like."""
        p = self.role_projections(layer).tolist()
        return sorted(zip(self.role_names, self.role_categories, p), key=lambda t: -t[2])

    def pca(self, layer: int | str | None = None) -> PCAResult:
        i = self.index(layer)
        return pca(self.role_vectors[:, i], orient=self.vectors[i])

    def tau(
        self, layer: int | str | None = None, percentile: float = 25.0, basis: Literal["tokens", "responses"] = "tokens"
    ) -> float:
        """Capping threshold: the ``percentile`` of the default Assistant's projections onto the unit axis, per
        response token (``tokens``; needs ``token_quantiles``) or per response mean (``responses``)."""
        i = self.index(layer)
        if not 0 <= percentile <= 100:
            raise ValueError("percentile must be in [0, 100]")
        if basis == "tokens":
            if self.token_quantiles is None:
                raise FeaturescopeError("this axis has no per-token default projections; use basis='responses'")
            q = self.token_quantiles[i]
            lo = int(math.floor(percentile))
            hi = min(lo + 1, 100)
            w = percentile - lo
            return float(q[lo] * (1 - w) + q[hi] * w)
        return float(torch.quantile(self.default_projections[:, i].double(), percentile / 100))

    def analysis(self, layer: int | str | None = None) -> dict[str, Any]:
        """PCA and placement numbers at one layer."""
        i = self.index(layer)
        p = self.pca(self.hooks[i])
        ax = self.vectors[i]
        d_pc = ((self.default_mean[i] - p.mean) @ p.components[: min(2, len(p.components))].T).tolist()
        pc1 = p.scores[:, 0]
        proj = self.role_projections(self.hooks[i])
        dproj = self.default_projection(self.hooks[i])
        ranked = sorted(zip(self.role_names, self.role_categories, proj.tolist()), key=lambda t: -t[2])
        group_mean = {}
        for g, cats in GROUPS.items():
            vals = [p_ for c, p_ in zip(self.role_categories, proj.tolist()) if c in cats]
            if vals:
                group_mean[g] = sum(vals) / len(vals)
        return {
            "hook": self.hooks[i],
            "axis_norm": float(ax.norm()),
            "explained_variance": [round(float(x), 5) for x in p.explained[:20]],
            "pcs_for_70pct": p.n_for(0.7),
            "axis_pc1_cosine": float(cosine(ax, p.components[0])),
            "axis_pc2_cosine": float(cosine(ax, p.components[1])) if len(p.components) > 1 else None,
            "default_pc": d_pc,
            "default_pc1_percentile": percentile_rank(d_pc[0], pc1),
            "default_pc1_z": float((d_pc[0] - pc1.mean()) / pc1.std().clamp(min=1e-9)) if len(pc1) > 1 else None,
            "default_axis_projection": dproj,
            "role_projection_range": [float(proj.min()), float(proj.max())],
            "default_axis_percentile": percentile_rank(dproj, proj),
            "group_mean_projection": group_mean,
            "top_roles": [r[0] for r in ranked[:10]],
            "bottom_roles": [r[0] for r in ranked[-10:][::-1]],
        }

    def per_layer(self) -> dict[str, list[Any]]:
        """Per-layer profile: axis norm, cos(axis, PC1), PCs for 70%, default's percentile on PC1."""
        out: dict[str, list[Any]] = {
            "hook": [],
            "axis_norm": [],
            "axis_pc1_cosine": [],
            "pcs_for_70pct": [],
            "default_pc1_percentile": [],
            "pc1_explained": [],
        }
        for i, h in enumerate(self.hooks):
            p = self.pca(h)
            d1 = float((self.default_mean[i] - p.mean) @ p.components[0])
            out["hook"].append(h)
            out["axis_norm"].append(float(self.vectors[i].norm()))
            out["axis_pc1_cosine"].append(float(cosine(self.vectors[i], p.components[0])))
            out["pcs_for_70pct"].append(p.n_for(0.7))
            out["default_pc1_percentile"].append(percentile_rank(d1, p.scores[:, 0]))
            out["pc1_explained"].append(float(p.explained[0]))
        return out

    # -- persistence ----------------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "format": "featurescope.axis/1",
            "hooks": self.hooks,
            "model": self.model,
            "stage": self.stage,
            "role_names": self.role_names,
            "role_categories": self.role_categories,
            "kind": self.kind,
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.safetensors, with the metadata as JSON in its header) and a readable ``.json`` beside it."""
        from .runs import jsonable
        from .store import atomic_save_tensors, atomic_write_text

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / "axis.safetensors" if (path.is_dir() or not path.suffix) else path.with_suffix(".safetensors")
        t = {
            "vectors": self.vectors.float(),
            "role_vectors": self.role_vectors.float(),
            "role_counts": self.role_counts.long(),
            "default_mean": self.default_mean.float(),
            "default_projections": self.default_projections.float(),
        }
        if self.token_quantiles is not None:
            t["token_quantiles"] = self.token_quantiles.float()
        meta = jsonable(self.metadata())
        atomic_save_tensors(path, t, metadata={"featurescope": json.dumps(meta)})
        atomic_write_text(
            path.with_suffix(".json"),
            json.dumps({**meta, "norms": self.norms, "role_counts": self.role_counts.tolist()}, indent=2),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> AssistantAxis:
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if path.is_dir():
            path = path / "axis.safetensors"
        if not path.exists():
            raise FeaturescopeError(f"no axis file at {path} (write one with `featurescope axis collect`)")
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("featurescope", "{}"))
        if meta.get("format") != "featurescope.axis/1":
            raise FeaturescopeError(f"{path} is not an Assistant-axis file (format {meta.get('format')!r})")
        t = load_file(str(path))
        return cls(
            vectors=t["vectors"],
            hooks=meta["hooks"],
            model=meta["model"],
            stage=meta["stage"],
            role_names=meta["role_names"],
            role_categories=meta["role_categories"],
            role_vectors=t["role_vectors"],
            role_counts=t["role_counts"],
            default_mean=t["default_mean"],
            default_projections=t["default_projections"],
            token_quantiles=t.get("token_quantiles"),
            kind=meta.get("kind", "response_mean"),
            extra=meta.get("extra", {}),
        )

    # -- display --------------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"AssistantAxis(model={self.model!r}, stage={self.stage}, kind={self.kind}, layers={self.n_layers}, "
            f"d={self.vectors.shape[-1]}, roles={len(self.role_names)}, default_responses="
            f"{self.default_projections.shape[0]})"
        )

    def _repr_html_(self) -> str:
        a = self.analysis()
        pl = self.per_layer()
        mx = max(pl["axis_norm"]) or 1.0
        rows = "".join(
            f"<tr><td>{h}</td><td><div style='background:#2c7fb8;height:9px;width:{150 * n / mx:.0f}px'></div></td>"
            f"<td>{n:.2f}</td><td>{c:+.2f}</td><td>{k}</td></tr>"
            for h, n, c, k in zip(pl["hook"], pl["axis_norm"], pl["axis_pc1_cosine"], pl["pcs_for_70pct"])
        )
        top = ", ".join(html.escape(x) for x in a["top_roles"][:5])
        bottom = ", ".join(html.escape(x) for x in a["bottom_roles"][:5])
        return (
            f"<div><b>Assistant axis</b> of <code>{html.escape(self.model)}</code> ({self.stage}, {self.kind}); "
            f"{len(self.role_names)} roles, {self.default_projections.shape[0]} default responses.<br/>"
            f"Middle layer {a['hook']}: cos(axis, PC1) = {a['axis_pc1_cosine']:+.2f}; {a['pcs_for_70pct']} PCs "
            f"reach 70% of the variance; default Assistant at percentile {a['default_pc1_percentile']:.2f} of the "
            f"roles on PC1.<br/>Most Assistant-like roles: {top}<br/>Least: {bottom}"
            f"<table><tr><th>hook</th><th colspan=2>axis norm</th><th>cos PC1</th><th>PCs 70%</th></tr>{rows}"
            f"</table></div>"
        )


# ================================================================================================================
# Jobs and role judging
# ================================================================================================================
@dataclasses.dataclass(frozen=True)
class AxisConfig(Config):
    """Scale and generation knobs of a role-vector collection."""

    n_roles: int | None = None  # None = every role in the library
    n_questions: int | None = None  # None = every shared question
    instructions: Literal["cycle", "all"] = "cycle"
    max_new_tokens: int = 48
    batch_size: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    seed: int = 0
    min_score: int = 3  # role-adherence score a response needs to count toward its role vector
    min_kept: int = 3  # below this many, fall back to >= min_score - 1, then to all responses
    reduction: Literal["response_mean", "prompt_mean"] = "response_mean"
    dtype: str = "float32"
    generation_dtype: str = "float32"  # "bfloat16": generate with a bf16 copy (~2.4x faster on this CPU)
    capture_dtype: str = "float32"  # "bfloat16": run the capture forward in bf16 (~2.7x faster; means still float32)
    shard_size: int = 256
    chunk: int = 256  # generations written to disk per chunk (generation resumes at chunk granularity)


@dataclasses.dataclass(frozen=True)
class Job(Config):
    condition: Literal["role", "default"]
    role: str  # role name, or "default"
    category: str
    instruction_index: int
    instruction: str
    question_index: int
    question: str

    def messages(self) -> list[Message]:
        msgs = [Message("system", self.instruction)] if self.instruction.strip() else []
        return msgs + [Message("user", self.question)]


def build_jobs(
    library: RoleLibrary, config: AxisConfig = AxisConfig(), roles: Sequence[str] | None = None
) -> list[Job]:
    """Default-Assistant jobs (every default prompt x every question) then role jobs."""
    qs = library.select_questions(config.n_questions)
    rs = library.select_roles(config.n_roles, roles)
    jobs = [
        Job("default", "default", "default", k, p, j, q)
        for k, p in enumerate(library.default_prompts)
        for j, q in enumerate(qs)
    ]
    for ri, r in enumerate(rs):
        for j, q in enumerate(qs):
            ks = range(N_INSTRUCTIONS) if config.instructions == "all" else [(j + ri) % N_INSTRUCTIONS]
            for k in ks:
                jobs.append(Job("role", r.name, r.category, k, r.instructions[k], j, q))
    return jobs


ROLE_RUBRIC = """You are checking whether an AI model stayed in a role it was asked to play.

[ROLE INSTRUCTION]
{instruction}
[QUESTION]
{question}
[ANSWER]
{answer}
[END]

Score how fully the answer is given as the character:
0 = the model refuses to play the role, or ignores it entirely;
1 = the model answers as an AI assistant, mentioning the role at most in passing;
2 = the model plays the role in part, but also says or implies that it is an AI or an assistant;
3 = the model answers fully as the character, with no sign of being an AI assistant.
Respond with a single number: 0, 1, 2 or 3."""

#: First-person texts of the default Assistant persona (the offline proxy's "assistant" anchor).
ASSISTANT_ANCHORS = (
    "I am an AI assistant, a language model here to help you with your questions.",
    "As an AI language model, I don't have personal experiences, but I'm happy to help.",
    "I'm a helpful assistant. How can I help you today?",
    "I am an artificial intelligence created to answer questions and assist users.",
    "I don't have feelings or a body; I'm a computer program designed to provide helpful information.",
)
_REFUSAL = re.compile(
    r"\b(i (?:can(?:no|')t|won't|will not|am unable to|'m unable to) "
    r"(?:play|pretend|role-?play|act as|take on|be a))",
    re.IGNORECASE,
)


@runtime_checkable
class RoleJudge(Protocol):
    name: str

    def score_roles(self, jobs: Sequence[Job], responses: Sequence[str]) -> list[int]: ...


class KeepAllJudge:
    """No filtering: every non-empty response scores 3."""

    name = "none"

    def score_roles(self, jobs: Sequence[Job], responses: Sequence[str]) -> list[int]:
        return [3 if r.strip() else 0 for r in responses]


class EmbeddingRoleJudge:
    """Offline proxy for the paper's 0-3 role-adherence judge, on all-MiniLM-L6-v2 sentence embeddings.

    With ``m = cos(answer, instruction) - cos(answer, Assistant anchor)`` (the anchor: the mean embedding of
    :data:`ASSISTANT_ANCHORS`) and ``ai`` = the answer calls itself an AI (:func:`identifies_as_ai`):
    0 = empty, degenerate (distinct-bigram ratio < ``min_bigram_ratio``) or an explicit refusal to play;
    3 = ``m >= margin`` and not ``ai``; 2 = ``m >= margin`` with ``ai``, or ``0 <= m < margin`` without;
    1 = otherwise. It reads topic and register, not whether the model *is* the character: a weak judge, and the
    numbers built on it say so.
    """

    def __init__(
        self,
        embedder: Any = None,
        margin: float = 0.05,
        min_bigram_ratio: float = 0.4,
        ai_terms: Sequence[str] = _DEFAULT_AI_TERMS,
    ):
        if embedder is None:
            from .judge import EmbeddingJudge

            embedder = EmbeddingJudge()
        self.embedder = embedder
        self.margin = margin
        self.min_bigram_ratio = min_bigram_ratio
        self.ai_terms = tuple(ai_terms)
        self.name = f"role-embedding:{getattr(embedder, 'name', type(embedder).__name__)}"
        self._anchor: Tensor | None = None

    def margins(self, jobs: Sequence[Job], responses: Sequence[str]) -> Tensor:
        if self._anchor is None:
            self._anchor = unit(self.embedder.embed(list(ASSISTANT_ANCHORS)).mean(0))
        texts = sorted({j.instruction for j in jobs})
        idx = {t: i for i, t in enumerate(texts)}
        ins = unit(self.embedder.embed(texts)) if texts else torch.zeros(0, 1)
        e = unit(self.embedder.embed([r if r.strip() else "..." for r in responses]))
        r_ins = ins[torch.tensor([idx[j.instruction] for j in jobs], dtype=torch.long)]
        return (e * r_ins).sum(-1) - e @ self._anchor

    def score_roles(self, jobs: Sequence[Job], responses: Sequence[str]) -> list[int]:
        if not jobs:
            return []
        m = self.margins(jobs, responses).tolist()
        out = []
        for mi, r in zip(m, responses):
            if not r.strip() or distinct_bigram_ratio(r) < self.min_bigram_ratio or _REFUSAL.search(r):
                out.append(0)
                continue
            ai = identifies_as_ai(r, self.ai_terms)
            if mi >= self.margin:
                out.append(2 if ai else 3)
            elif mi >= 0:
                out.append(1 if ai else 2)
            else:
                out.append(1)
        return out


class LLMRoleJudge:
    """The paper's judge: an LLM scores 0-3 with :data:`ROLE_RUBRIC` (via a featurescope ``OpenAIJudge``; the
    score is the expected value over the judge's number-token log-probs, rounded)."""

    def __init__(self, judge: Any = None):
        if judge is None:
            from .judge import OpenAIJudge

            judge = OpenAIJudge()
        self.judge = judge
        self.name = f"role-llm:{getattr(judge, 'name', '?')}"

    def score_roles(self, jobs: Sequence[Job], responses: Sequence[str]) -> list[int]:
        out = []
        for j, r in zip(jobs, responses):
            if not r.strip():
                out.append(0)
                continue
            v = self.judge._ask(
                ROLE_RUBRIC.replace("{instruction}", j.instruction)
                .replace("{question}", j.question)
                .replace("{answer}", r)
            )
            out.append(0 if v is None else int(min(3, max(0, round(v)))))
        return out


def role_judge(judge: Any = "auto") -> RoleJudge:
    """A role judge from a name or a featurescope trait judge: ``"auto"`` (LLM when ``FEATURESCOPE_JUDGE_URL`` is set,
    else the offline proxy), ``"embedding"``, ``"llm"``, ``"none"``, an ``EmbeddingJudge`` / ``OpenAIJudge``
    instance, or anything with ``score_roles``."""
    import os

    if hasattr(judge, "score_roles"):
        return judge
    if judge is None or judge == "none":
        return KeepAllJudge()
    if judge == "auto":
        judge = "llm" if os.environ.get("FEATURESCOPE_JUDGE_URL", "").strip() else "embedding"
    if judge == "embedding":
        return EmbeddingRoleJudge()
    if judge == "llm":
        from .judge import default_judge

        llm = default_judge()  # refuses a URL without a model name, checks the endpoint before any generation
        if not hasattr(llm, "_ask"):
            raise FeaturescopeError("--judge llm needs FEATURESCOPE_JUDGE_URL and FEATURESCOPE_JUDGE_MODEL")
        return LLMRoleJudge(llm)
    if hasattr(judge, "_ask"):
        return LLMRoleJudge(judge)
    if hasattr(judge, "embed"):
        return EmbeddingRoleJudge(judge)
    raise FeaturescopeError(f"unknown role judge {judge!r}: auto, embedding, llm or none")


def keep_mask(
    jobs: Sequence[Job], scores: Sequence[int], usable: Sequence[bool], min_score: int = 3, min_kept: int = 3
) -> tuple[Tensor, dict[str, int]]:
    """Which role responses count toward their role vector: score >= ``min_score``; for a role with fewer than
    ``min_kept`` such responses, score >= ``min_score - 1``, then any usable response. Default-Assistant rows are
    always kept when usable. Returns (mask, threshold used per role)."""
    keep = torch.zeros(len(jobs), dtype=torch.bool)
    used: dict[str, int] = {}
    by_role: dict[str, list[int]] = {}
    for i, j in enumerate(jobs):
        if j.condition == "default":
            keep[i] = bool(usable[i])
        else:
            by_role.setdefault(j.role, []).append(i)
    for role, idx in by_role.items():
        for t in (min_score, min_score - 1, -1):
            sel = [i for i in idx if usable[i] and scores[i] >= t]
            if len(sel) >= min(min_kept, sum(bool(usable[i]) for i in idx)) and sel:
                keep[sel] = True
                used[role] = t
                break
        else:
            used[role] = -1
    return keep, used


# ================================================================================================================
# Collection (drives a model; writes to disk when given a folder)
# ================================================================================================================
def _hash(x: Any) -> str:
    return hashlib.sha256(json.dumps(x, sort_keys=True, default=str).encode()).hexdigest()[:16]


def generate_cached(
    model: Any,
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
) -> list[str]:
    """Batched generation of one answer per conversation, written chunk by chunk to ``path`` (JSONL) so that an
    interrupted run resumes where it stopped. The file starts with a header naming the request; a file written
    for another request is refused. Conversations are ordered by length first (less padding)."""
    from .generate import generate

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
    for c0 in range(0, len(order), chunk):
        idx = order[c0 : c0 + chunk]
        gens = generate(
            model,
            [convs[i] for i in idx],
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            seed=seed + c0,
            batch_size=batch_size,
            progress=False,
        )
        rows = []
        for i, g in zip(idx, gens):
            done[i] = g.response
            rows.append(json.dumps({"i": i, "response": g.response, "new_tokens": g.new_tokens, "stopped": g.stopped}))
        if p is not None:
            with open(p, "a") as f:
                f.write("\n".join(rows) + "\n")
                f.flush()
        bar.update(len(idx))
    bar.close()
    return [done[i] for i in range(len(convs))]


def token_projections(
    model: Any,
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
    from .capture import stop_layer

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


def _format_all(model: Any, convs: Sequence[Sequence[Message]]) -> list[FormattedPrompt]:
    from .formatting import format_conversation

    return [format_conversation(model, list(c)) for c in convs]


def collect_axis(
    model: Any,
    library: RoleLibrary | None = None,
    config: AxisConfig = AxisConfig(),
    *,
    judge: Any = "auto",
    out_dir: str | Path | None = None,
    roles: Sequence[str] | None = None,
    responses: Sequence[str] | None = None,
    hooks: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[AssistantAxis, list[dict[str, Any]]]:
    """Generate (or take) the answers of every role and of the default Assistant, judge role adherence, capture
    activations at every layer and build the :class:`AssistantAxis`.

    With ``out_dir``, generations (``generations.jsonl``) and activations (``activations/``, an ActivationStore)
    stream to disk and an interrupted call resumes; ``responses.jsonl`` lists every job with its answer and score.
    ``responses`` (one per job of :func:`build_jobs`) skips generation - e.g. to read a base checkpoint on the
    post-trained model's answers. Returns (axis, rows)."""
    from .capture import capture, default_hooks
    from .store import ActivationStore

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
    formatted = _format_all(model, [convs[i] + [Message("assistant", responses[i])] for i in live])
    store = ActivationStore(out / "activations" / config.reduction, shard_size=config.shard_size) if out else None
    cap_model = model.cast(config.capture_dtype)
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


# ================================================================================================================
# Steering, capping, drift, base-model prefills
# ================================================================================================================
@contextlib.contextmanager
def steer_axis(
    model: Any,
    axis: AssistantAxis,
    alpha: float,
    layer: int | str | None = None,
    positions: Literal["all", "response"] = "all",
) -> Iterator[None]:
    """``h <- h + alpha * axis_L`` at ``blocks.L.hook_resid_post`` (alpha > 0 toward the Assistant)."""
    from .persona import steer

    with steer(model, axis.at(layer), alpha, hook=axis.hook(layer), positions=positions):
        yield


@dataclasses.dataclass
class CapStats:
    """Running counts of a :func:`cap` context: tokens seen and tokens lifted per hook."""

    seen: dict[str, int] = dataclasses.field(default_factory=dict)
    capped: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def fraction(self) -> float:
        s = sum(self.seen.values())
        return sum(self.capped.values()) / s if s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "capped": self.capped, "skipped": self.skipped, "fraction_capped": self.fraction}


def capping_hook(
    v_hat: Float[Tensor, " d"],
    tau: float,
    stats: CapStats | None = None,
    name: str = "",
    skip_outliers: float | None = 10.0,
) -> Callable[[Tensor, Any], Tensor]:
    """A TransformerLens hook flooring ``<h, v_hat>`` at ``tau`` (see :func:`cap_activations`)."""

    def fn(act: Tensor, hook: Any = None) -> Tensor:
        v = v_hat.to(act.device)
        skip = outlier_positions(act, skip_outliers) if act.shape[-2] > 1 else None
        if stats is not None:
            proj = act.float() @ v.float()
            low = proj < tau
            if skip is not None:
                low = low & ~skip
                stats.skipped[name] = stats.skipped.get(name, 0) + int(skip.sum())
            stats.seen[name] = stats.seen.get(name, 0) + int(proj.numel())
            stats.capped[name] = stats.capped.get(name, 0) + int(low.sum())
        return cap_activations(act, v, tau, skip)

    return fn


@contextlib.contextmanager
def cap(
    model: Any,
    axis: AssistantAxis,
    layers: Sequence[int | str] | None = None,
    *,
    percentile: float = 25.0,
    tau: float | Sequence[float] | None = None,
    basis: Literal["auto", "tokens", "responses"] = "auto",
    skip_outliers: float | None = 10.0,
) -> Iterator[CapStats]:
    """Activation capping: inside the context every forward pass floors the projection on the unit axis at
    ``tau_L`` at each capped layer (``h <- h + v_hat * max(tau - <h, v_hat>, 0)``), so the model cannot drift
    below the default Assistant's ``percentile``-th projection. Default layers: :func:`default_cap_layers`.
    Yields a :class:`CapStats`; hooks are removed on exit and on error."""
    if layers is None:
        layers = [L for L in default_cap_layers(model.n_layers) if f"blocks.{L}.hook_resid_post" in axis.hooks]
    if axis.vectors.shape[-1] != model.d_model:
        raise FeaturescopeError(f"axis width {axis.vectors.shape[-1]} != {model.name}'s d_model {model.d_model}")
    if tau is not None and not isinstance(tau, (int, float)) and len(tau) != len(layers):
        raise ValueError("give one tau per capped layer (or one for all)")
    if basis == "auto":
        basis = "tokens" if axis.token_quantiles is not None else "responses"
    stats = CapStats()
    fwd = []
    for k, L in enumerate(layers):
        h = axis.hook(L)
        t_ = (
            (float(tau) if isinstance(tau, (int, float)) else float(tau[k]))
            if tau is not None
            else axis.tau(L, percentile, basis)
        )
        fwd.append((model.check_hook(h), capping_hook(axis.unit(L), t_, stats, h, skip_outliers)))
    with model.tl.hooks(fwd_hooks=fwd):
        yield stats


def ai_fraction(texts: Sequence[str], terms: Sequence[str] = _DEFAULT_AI_TERMS) -> float:
    return sum(identifies_as_ai(t, terms) for t in texts) / max(len(texts), 1)


def axis_steering_sweep(
    model: Any,
    axis: AssistantAxis,
    *,
    layer: int | str | None = None,
    alphas: Sequence[float] = (-4.0, -2.0, 0.0, 2.0, 4.0),
    questions: Sequence[str] | None = None,
    system_prompts: Sequence[str | None] = (None,),
    max_new_tokens: int = 40,
    batch_size: int = 16,
    seed: int = 0,
    ai_terms: Sequence[str] = _DEFAULT_AI_TERMS,
    progress: bool = True,
) -> dict[str, Any]:
    """Steer along the axis at one layer for each alpha (and each system prompt: ``None`` = none) and measure
    whether the model still identifies as an AI, the coherence (distinct-bigram ratio) and the projection of its
    answers on the axis read back *without* steering."""
    from .capture import capture
    from .generate import generate

    qs = list(questions or load_role_library(min_roles=0, min_questions=0).identity_questions)
    h = axis.hook(layer)
    rows = []
    for sp in system_prompts:
        convs = [([Message("system", sp)] if sp else []) + [Message("user", q)] for q in qs]
        for a in alphas:
            with steer_axis(model, axis, a, h):
                gens = generate(
                    model, convs, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, progress=False
                )
            texts = [g.response for g in gens]
            fm = [g.formatted for g in gens if g.formatted is not None]
            proj = (
                float(project(capture(model, fm, [h], batch_size=batch_size, progress=False)[h], axis.at(h)).mean())
                if fm
                else float("nan")
            )
            row = {
                "system_prompt": sp or "",
                "alpha": a,
                "ai_fraction": ai_fraction(texts, ai_terms),
                "coherence": sum(distinct_bigram_ratio(t) for t in texts) / max(len(texts), 1),
                "readback_projection": proj,
                "responses": [{"question": q, "response": t} for q, t in zip(qs, texts)],
            }
            rows.append(row)
            if progress:
                print(
                    f"  [{(sp or 'no system prompt')[:30]}] alpha {a:+.1f}: identifies as AI {row['ai_fraction']:.2f}  "
                    f"coherence {row['coherence']:.2f}  readback projection {proj:.2f}",
                    flush=True,
                )
    return {
        "hook": h,
        "alphas": list(alphas),
        "questions": qs,
        "rows": rows,
        "alpha_units": "multiples of the unnormalised axis at this layer (alpha=1 = the default-minus-roles gap)",
        "axis_norm": float(axis.at(h).norm()),
    }


def run_drift(
    model: Any,
    axis: AssistantAxis,
    scripts: Sequence[DriftScript] | None = None,
    *,
    layers: Sequence[int | str] | None = None,
    n_turns: int | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    seed: int = 0,
    system_prompt: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Play each script turn by turn (all scripts batched per turn; assistant turns generated by the model, hooks
    active in the caller's context apply). Returns the conversations; :func:`drift_projections` reads them back.
    ``layers`` (default: the middle layer) are where the projections will be read."""
    from .generate import generate

    scripts = list(scripts if scripts is not None else load_role_library(min_roles=0, min_questions=0).scripts)
    hooks = [axis.hook(L) for L in (layers if layers is not None else [None])]
    T = min(len(s.user_turns) for s in scripts) if n_turns is None else n_turns
    convs: list[list[Message]] = [[Message("system", system_prompt)] if system_prompt else [] for _ in scripts]
    for t in tqdm(range(T), desc=f"drift {model.name}", disable=not progress):
        for c, s in zip(convs, scripts):
            c.append(Message("user", s.user_turns[t]))
        gens = generate(
            model, convs, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed + t, progress=False
        )
        for c, g in zip(convs, gens):
            c.append(Message("assistant", g.response or "..."))
    return {"hooks": hooks, "n_turns": T, "conversations": convs, "scripts": [s.name for s in scripts]}


def drift_projections(model: Any, axis: AssistantAxis, played: dict[str, Any], batch_size: int = 4) -> dict[str, Any]:
    """Per-turn mean projections of the Assistant turns of conversations played by :func:`run_drift`."""
    hooks = played["hooks"]
    prompts = _format_all(model, played["conversations"])
    dirs = torch.stack([axis.at(h) for h in hooks])
    tp = token_projections(model, prompts, dirs, hooks, batch_size=batch_size)
    per: dict[str, Any] = {}
    for name, p, pr, conv in zip(played["scripts"], tp, prompts, played["conversations"]):
        spans = turn_spans(pr.role_ids)
        turns = [p[a:b].mean(0).tolist() for a, b in spans]
        per[name] = {
            "projection": {h: [t[k] for t in turns] for k, h in enumerate(hooks)},
            "responses": [m.content for m in conv if m.role == "assistant"],
        }
    return {"hooks": hooks, "n_turns": played["n_turns"], "scripts": per}


def drift(
    model: Any,
    axis: AssistantAxis,
    scripts: Sequence[DriftScript] | None = None,
    *,
    cap_layers: Sequence[int] | None = None,
    capped: bool = False,
    percentile: float = 25.0,
    skip_outliers: float | None = 10.0,
    **kw: Any,
) -> dict[str, Any]:
    """Play the scripts (under activation capping when ``capped``) and read the per-turn projections back without
    any hook, so a capped run differs from an uncapped one only through the text the model wrote."""
    stats = None
    if capped:
        with cap(model, axis, cap_layers, percentile=percentile, skip_outliers=skip_outliers) as st:
            played = run_drift(model, axis, scripts, **kw)
        stats = st.to_dict()
    else:
        played = run_drift(model, axis, scripts, **kw)
    res = drift_projections(model, axis, played)
    res["capped"] = capped
    if stats is not None:
        res["cap_stats"] = stats
        res["cap_layers"] = (
            list(cap_layers)
            if cap_layers is not None
            else [L for L in default_cap_layers(model.n_layers) if f"blocks.{L}.hook_resid_post" in axis.hooks]
        )
        res["cap_percentile"] = percentile
    return res


def complete_prefills(
    model: Any,
    texts: Sequence[str],
    *,
    max_new_tokens: int = 12,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
) -> list[str]:
    """Raw continuations of plain text (no chat or transcript framing), up to the first newline."""
    from .generate import generate_batch, stop_token_ids

    tok = model.tokenizer
    stops = set(stop_token_ids(model))
    for s in ("\n", "\n\n"):
        ids = tok.encode(s, add_special_tokens=False)
        if len(ids) == 1:
            stops.add(int(ids[0]))
    prompts = []
    for t in texts:
        ids = torch.tensor(tok(t, add_special_tokens=True)["input_ids"], dtype=torch.long)
        prompts.append(
            FormattedPrompt(
                text=t,
                tokens=ids,
                role_ids=torch.zeros(len(ids), dtype=torch.long),
                last_prompt_index=len(ids) - 1,
                kind="transcript",
                messages=[],
                has_response=False,
            )
        )
    out: list[str] = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for b0 in range(0, len(order), batch_size):
        idx = order[b0 : b0 + batch_size]
        new = generate_batch(
            model,
            [prompts[i] for i in idx],
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=None,
            seed=seed + b0,
            stops=sorted(stops),
            fwd_hooks=fwd_hooks,
        )
        for i, toks in zip(idx, new):
            cut = next((k for k, x in enumerate(toks) if x in stops), len(toks))
            out[i] = tok.decode(toks[:cut], skip_special_tokens=True).split("\n")[0].strip()
    return out


def prefill_test(
    model: Any,
    vector: Float[Tensor, " d"] | AssistantAxis,
    *,
    layer: int | str | None = None,
    alphas: Sequence[float] = (-4.0, 0.0, 4.0),
    library: RoleLibrary | None = None,
    n_samples: int = 1,
    max_new_tokens: int = 12,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """The paper's base-model test: steer (usually a base checkpoint) along an axis and classify how it completes
    "I am a ..." prefills: fraction of completions naming a helpful human archetype vs a fantastical one
    (:func:`classify_completion` with the shipped word lists). ``vector`` is an axis (its unnormalised vector at
    ``layer`` is used, so alpha has the axis' own units) or a raw vector (then ``layer`` must be an int).
    ``n_samples`` > 1 samples (temperature 1) that many completions per prefill with different seeds."""
    lib = library or load_role_library(min_roles=0, min_questions=0)
    if isinstance(vector, AssistantAxis):
        if vector.vectors.shape[-1] != model.d_model:
            raise FeaturescopeError(
                f"the axis of {vector.model} has width {vector.vectors.shape[-1]} but {model.name} "
                f"has d_model {model.d_model}: the test needs two stages of the same model"
            )
        h, v = vector.hook(layer), vector.at(layer)
    else:
        if layer is None or isinstance(layer, str) and not layer.startswith("blocks."):
            raise ValueError("give the layer (int or hook name) to steer a raw vector at")
        h, v = (model.resid_hook(layer) if isinstance(layer, int) else layer), vector
    from .persona import steering_hook

    rows = []
    for a in alphas:
        comps: list[dict[str, str]] = []
        for s in range(n_samples):
            texts = complete_prefills(
                model,
                lib.prefills,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                do_sample=n_samples > 1,
                seed=seed + 1000 * s,
                fwd_hooks=[(h, steering_hook(v, a))],
            )
            comps += [
                {
                    "prefill": p,
                    "completion": c,
                    "label": classify_completion(c, lib.helpful_archetypes, lib.fantastical_archetypes),
                }
                for p, c in zip(lib.prefills, texts)
            ]
        n = len(comps)
        frac = {k: sum(c["label"] == k for c in comps) / n for k in ("helpful", "fantastical", "both", "other")}
        rows.append(
            {
                "alpha": a,
                **{f"{k}_fraction": v_ for k, v_ in frac.items()},
                "helpful_minus_fantastical": frac["helpful"] - frac["fantastical"],
                "completions": comps,
            }
        )
        if progress:
            print(
                f"  alpha {a:+.1f}: helpful {frac['helpful']:.2f}  fantastical {frac['fantastical']:.2f}  "
                f"other {frac['other']:.2f}",
                flush=True,
            )
    return {
        "hook": h,
        "alphas": list(alphas),
        "n_prefills": len(lib.prefills),
        "n_samples": n_samples,
        "rows": rows,
        "measure": "whole-word matches of prefills.yaml's helpful_archetypes / fantastical_archetypes in the first "
        "12 words of each completion",
    }


# ================================================================================================================
# Across stages and SAE features
# ================================================================================================================
def compare_axes(base: AssistantAxis, post: AssistantAxis, n_pcs: int = 3) -> dict[str, Any]:
    """Cross-stage numbers for two axes of the same architecture (same hooks and width): per layer, the cosine of
    the axes, |cosine| of the matched top ``n_pcs`` principal components, per-role vector cosines (raw, and centred
    on each model's mean role vector) over the roles both have, and where each model's default Assistant falls on
    the other's axis (0 = that model's mean role vector, 1 = its own default Assistant; and its percentile among
    that model's roles)."""
    if base.vectors.shape != post.vectors.shape or base.hooks != post.hooks:
        raise FeaturescopeError(
            f"cannot compare axes of different shapes/hooks: {base.model} {tuple(base.vectors.shape)} vs "
            f"{post.model} {tuple(post.vectors.shape)}; cross-stage comparison needs two checkpoints of one architecture"
        )
    common = [r for r in base.role_names if r in post.role_names]
    if len(common) < 2:
        raise FeaturescopeError("the two axes share fewer than 2 roles")
    bi = torch.tensor([base.role_names.index(r) for r in common])
    pi = torch.tensor([post.role_names.index(r) for r in common])
    rb, rp = base.role_vectors[bi].float(), post.role_vectors[pi].float()  # [R, L, d]
    out: dict[str, Any] = {
        "hooks": base.hooks,
        "n_common_roles": len(common),
        "axis_cosine": [],
        "pc_cosines": [],
        "role_cosine_raw_mean": [],
        "role_cosine_raw_min": [],
        "role_cosine_centred_mean": [],
        "post_default_on_base_axis": [],
        "post_default_percentile_on_base": [],
        "base_default_on_post_axis": [],
    }
    for i in range(base.n_layers):
        out["axis_cosine"].append(float(cosine(base.vectors[i], post.vectors[i])))
        pb, pp = pca(rb[:, i], orient=base.vectors[i]), pca(rp[:, i], orient=post.vectors[i])
        k = min(n_pcs, len(pb.components), len(pp.components))
        out["pc_cosines"].append([abs(float(cosine(pb.components[j], pp.components[j]))) for j in range(k)])
        raw = cosine(rb[:, i], rp[:, i])
        cen = cosine(rb[:, i] - rb[:, i].mean(0), rp[:, i] - rp[:, i].mean(0))
        out["role_cosine_raw_mean"].append(float(raw.mean()))
        out["role_cosine_raw_min"].append(float(raw.min()))
        out["role_cosine_centred_mean"].append(float(cen.mean()))

        def place(axis_m: AssistantAxis, j: int, x: Tensor, roles: Tensor) -> tuple[float, float]:
            u = unit(axis_m.vectors[j])
            lo = float(roles.mean(0) @ u)
            hi = float(axis_m.default_mean[j] @ u)
            return (float(x @ u) - lo) / (hi - lo if abs(hi - lo) > 1e-9 else 1e-9), percentile_rank(
                float(x @ u), roles @ u
            )

        pos, pct = place(base, i, post.default_mean[i].float(), rb[:, i])
        out["post_default_on_base_axis"].append(pos)
        out["post_default_percentile_on_base"].append(pct)
        out["base_default_on_post_axis"].append(place(post, i, base.default_mean[i].float(), rp[:, i])[0])
    m = base.middle_layer
    out["middle"] = {
        k: out[k][m]
        for k in (
            "axis_cosine",
            "pc_cosines",
            "role_cosine_raw_mean",
            "role_cosine_centred_mean",
            "post_default_on_base_axis",
            "post_default_percentile_on_base",
            "base_default_on_post_axis",
        )
    }
    out["middle"]["hook"] = base.hooks[m]
    out["models"] = {"base": base.model, "post": post.model}
    out["paper"] = {
        "top3_pc_cosines": PAPER["base_vs_instruct_top3_pc_cosines_gemma2_27b"],
        "role_vector_cosines": PAPER["base_vs_instruct_role_vector_cosines"],
    }
    return out


def decompose_axis(axis: AssistantAxis, sae: Any, layer: int | str | None = None, k: int = 100) -> dict[str, Any]:
    """The axis at the SAE's layer in SAE features (:func:`featurescope.decompose.decompose`): decoder cosines, and
    the encode/attribution views with the default-Assistant mean as the "positive" activation and the role vectors
    as the "negative" ones (means of responses, not tokens)."""
    from .decompose import decompose
    from .saes import sae_hook

    h = axis.hook(layer) if layer is not None else (sae_hook(sae) or axis.hook(None))
    i = axis.index(h)
    return decompose(axis.vectors[i], sae, pos_acts=axis.default_mean[i][None], neg_acts=axis.role_vectors[:, i], k=k)


def axis_features_across_stages(base: AssistantAxis, post: AssistantAxis, sae: Any, k: int = 20) -> dict[str, Any]:
    """Both axes in one SAE's features (at the SAE's hook): each one's top-``k`` features per view and their overlap
    - which features the two stages' axes share."""
    from .saes import sae_hook

    h = sae_hook(sae)
    if h not in base.hooks or h not in post.hooks:
        raise FeaturescopeError(f"the SAE reads {h}, which the axes do not both have ({base.hooks[0]} ...)")
    db, dp = decompose_axis(base, sae, layer=h, k=max(k, 1)), decompose_axis(post, sae, layer=h, k=max(k, 1))
    return {
        "hook": h,
        "base_axis": base.model,
        "post_axis": post.model,
        "base": {m: d.to_dict(k) for m, d in db.items()},
        "post": {m: d.to_dict(k) for m, d in dp.items()},
        "overlap": compare_decompositions(db, dp, k=k),
    }


def compare_decompositions(a: dict[str, Any], b: dict[str, Any], k: int = 20) -> dict[str, Any]:
    """Overlap of the top-k features of two decompositions (e.g. base and post-trained axes with one SAE)."""
    out = {}
    for m in a:
        if m in b:
            sa, sb = set(a[m].indices[:k].tolist()), set(b[m].indices[:k].tolist())
            out[m] = {"shared": sorted(sa & sb), "jaccard": len(sa & sb) / max(len(sa | sb), 1), "k": k}
    return out


# ================================================================================================================
# Figures (every title names the model, stage, layer and data)
# ================================================================================================================
def _plots() -> Any:
    from . import plots

    return plots


CAT_COLORS = {
    "profession": "#1f77b4",
    "helper_human": "#17becf",
    "creative": "#bcbd22",
    "fictional": "#d62728",
    "mythical": "#9467bd",
    "creature": "#8c564b",
    "ai_good": "#2ca02c",
    "ai_bad": "#ff7f0e",
    "historical": "#7f7f7f",
    "abstract": "#e377c2",
    "antagonist": "#000000",
}


def plot_explained_variance(path: Path, axis: AssistantAxis, tag: str, layer: int | str | None = None) -> str:
    pl = _plots()
    plt = pl._plt()
    p = axis.pca(layer)
    ev = p.explained[:30].tolist()
    cum = torch.tensor(ev).cumsum(0).tolist()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(range(1, len(ev) + 1), ev, color="#2c7fb8", label="explained variance ratio")
    ax.plot(range(1, len(ev) + 1), cum, color="#d95f0e", marker="o", ms=3, label="cumulative")
    ax.axhline(0.7, color="grey", ls="--", lw=1, label=f"70%: {p.n_for(0.7)} PCs")
    ax.set_xlabel("principal component of the role vectors")
    ax.set_ylabel("fraction of variance")
    pl._title(ax, f"persona space PCA at {axis.hook(layer)} - {tag}")
    ax.legend(fontsize=7)
    return pl._save(fig, path)


def plot_pc_scatter(
    path: Path, axis: AssistantAxis, tag: str, layer: int | str | None = None, label_all: bool = True
) -> str:
    pl = _plots()
    plt = pl._plt()
    p = axis.pca(layer)
    i = axis.index(layer)
    s = p.scores
    d = ((axis.default_mean[i] - p.mean) @ p.components[:2].T).tolist()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for c in dict.fromkeys(axis.role_categories):
        m = torch.tensor([x == c for x in axis.role_categories])
        ax.scatter(
            s[m, 0],
            s[m, 1] if s.shape[1] > 1 else torch.zeros(int(m.sum())),
            s=14,
            color=CAT_COLORS.get(c, "#333"),
            label=c,
        )
    if label_all:
        for n, x, y in zip(
            axis.role_names, s[:, 0].tolist(), (s[:, 1] if s.shape[1] > 1 else torch.zeros(len(s))).tolist()
        ):
            ax.annotate(n, (x, y), fontsize=5, alpha=0.8)
    ax.scatter(
        [d[0]],
        [d[1] if len(d) > 1 else 0],
        marker="*",
        s=180,
        color="gold",
        edgecolor="black",
        label="default Assistant",
        zorder=5,
    )
    ax.set_xlabel(
        f"PC1 ({float(p.explained[0]):.0%}; cos with axis {float(cosine(axis.vectors[i], p.components[0])):+.2f})"
    )
    ax.set_ylabel(f"PC2 ({float(p.explained[1]) if len(p.explained) > 1 else 0:.0%})")
    pl._title(ax, f"roles on PC1/PC2 at {axis.hook(layer)} - {tag}")
    ax.legend(fontsize=6, ncol=2)
    return pl._save(fig, path)


def plot_layers(path: Path, axis: AssistantAxis, tag: str) -> str:
    pl = _plots()
    plt = pl._plt()
    pr = axis.per_layer()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(pr["axis_pc1_cosine"], marker="o", ms=3, label="cos(axis, PC1)")
    ax.plot(pr["pc1_explained"], marker="s", ms=3, label="PC1 explained variance")
    ax.plot(pr["default_pc1_percentile"], marker="^", ms=3, label="default Assistant percentile on PC1")
    ax.axvline(axis.middle_layer, color="grey", ls="--", lw=1, label="middle layer")
    ax.set_xlabel("layer L (blocks.L.hook_resid_post)")
    ax2 = ax.twinx()
    ax2.plot(pr["axis_norm"], color="black", lw=0.8, ls=":", label="axis norm (right)")
    ax2.set_ylabel("axis norm", fontsize=7)
    pl._title(ax, f"the Assistant axis per layer - {tag}")
    ax.legend(fontsize=6, loc="lower left")
    return pl._save(fig, path)


def plot_ranked_roles(path: Path, axis: AssistantAxis, tag: str, layer: int | str | None = None, n: int = 15) -> str:
    pl = _plots()
    plt = pl._plt()
    r = axis.ranked_roles(layer)
    show = r[:n] + r[-n:] if len(r) > 2 * n else r
    fig, ax = plt.subplots(figsize=(6.5, max(3.0, 0.16 * len(show) + 1)))
    ys = list(range(len(show)))[::-1]
    ax.barh(ys, [x[2] for x in show], color=[CAT_COLORS.get(x[1], "#333") for x in show])
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{x[0]} ({x[1]})" for x in show], fontsize=5.5)
    ax.axvline(axis.default_projection(layer), color="gold", lw=2, label="default Assistant")
    ax.set_xlabel("projection of the role vector on the unit axis")
    pl._title(ax, f"roles ranked by projection on the axis at {axis.hook(layer)} (top and bottom {n}) - {tag}")
    ax.legend(fontsize=6)
    return pl._save(fig, path)


def plot_steering(path: Path, sweep: dict[str, Any], tag: str) -> str:
    pl = _plots()
    plt = pl._plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    for sp in dict.fromkeys(r["system_prompt"] for r in sweep["rows"]):
        rs = [r for r in sweep["rows"] if r["system_prompt"] == sp]
        lab = (sp[:28] + "...") if len(sp) > 28 else (sp or "no system prompt")
        ax.plot([r["alpha"] for r in rs], [r["ai_fraction"] for r in rs], marker="o", label=f"identifies as AI [{lab}]")
        ax.plot([r["alpha"] for r in rs], [r["coherence"] for r in rs], marker="s", ls=":", label=f"coherence [{lab}]")
    ax.set_xlabel("alpha (h <- h + alpha * axis; > 0 toward the Assistant)")
    ax.set_ylim(-0.03, 1.03)
    pl._title(ax, f"steering along the axis at {sweep['hook']} on {len(sweep['questions'])} identity questions - {tag}")
    ax.legend(fontsize=6)
    return pl._save(fig, path)


def plot_drift(path: Path, runs: dict[str, dict[str, Any]], tag: str, tau: float | None = None) -> str:
    """One line per script (solid: uncapped, dashed: capped when given) of the per-turn projection at the first hook."""
    pl = _plots()
    plt = pl._plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    hook = None
    for ls, (label, res) in zip(("-", "--", ":"), runs.items()):
        hook = res["hooks"][0]
        for c, (name, s) in zip(colors * 3, res["scripts"].items()):
            y = s["projection"][hook]
            ax.plot(range(1, len(y) + 1), y, ls=ls, marker="o", ms=3, color=c, label=f"{name} ({label})")
    if tau is not None:
        ax.axhline(tau, color="grey", lw=1, ls="-.", label="tau (capping threshold)")
    ax.set_xlabel("Assistant turn")
    ax.set_ylabel("mean projection on the unit axis")
    pl._title(ax, f"persona drift per turn at {hook} over the shipped scripts - {tag}")
    ax.legend(fontsize=5, ncol=2)
    return pl._save(fig, path)


def plot_prefill(path: Path, res: dict[str, Any], tag: str) -> str:
    pl = _plots()
    plt = pl._plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    a = [r["alpha"] for r in res["rows"]]
    for k in ("helpful", "fantastical", "other"):
        ax.plot(a, [r[f"{k}_fraction"] for r in res["rows"]], marker="o", label=k)
    ax.set_xlabel("alpha (steering along the axis)")
    ax.set_ylabel("fraction of completions")
    ax.set_ylim(-0.03, 1.03)
    pl._title(ax, f"'I am a ...' completions under steering at {res['hook']}, {res['n_prefills']} prefills - {tag}")
    ax.legend(fontsize=7)
    return pl._save(fig, path)


def plot_compare(path: Path, cmp: dict[str, Any], tag: str) -> str:
    pl = _plots()
    plt = pl._plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(cmp["axis_cosine"], marker="o", ms=3, label="cos(base axis, post axis)")
    for j in range(len(cmp["pc_cosines"][0])):
        ax.plot(
            [x[j] if j < len(x) else float("nan") for x in cmp["pc_cosines"]],
            ms=3,
            marker="s",
            label=f"|cos PC{j + 1}|",
        )
    ax.plot(cmp["role_cosine_centred_mean"], marker="^", ms=3, label="role vectors, centred (mean cos)")
    ax.set_xlabel("layer L (blocks.L.hook_resid_post)")
    pl._title(ax, f"base vs post-trained: {cmp['models']['base']} vs {cmp['models']['post']} - {tag}")
    ax.legend(fontsize=6)
    return pl._save(fig, path)


# ================================================================================================================
# Orchestrator
# ================================================================================================================
def run_axis(
    model: Any,
    out_dir: str | Path,
    *,
    n_roles: int | None = 24,
    n_questions: int | None = 8,
    max_new_tokens: int = 40,
    batch_size: int = 16,
    judge: Any = "auto",
    library: RoleLibrary | None = None,
    extra_roles: str | Path | Sequence[str | Path] = (),
    instructions: Literal["cycle", "all"] = "cycle",
    layer: int | None = None,
    alphas: Sequence[float] = (-4.0, -2.0, 0.0, 2.0, 4.0),
    steer_system_prompts: Sequence[str | None] | None = None,
    n_identity_questions: int | None = 8,
    drift_turns: int | None = 6,
    drift_scripts: Sequence[str] | None = None,
    cap_layers: Sequence[int] | None = None,
    cap_percentile: float = 25.0,
    prefill_axis: AssistantAxis | None = None,
    prefill_alphas: Sequence[float] | None = None,
    compare_with: AssistantAxis | None = None,
    sae: Any = None,
    responses: Sequence[str] | None = None,
    seed: int = 0,
    generation_dtype: str = "float32",
    capture_dtype: str = "float32",
    progress: bool = True,
) -> dict[str, Any]:
    """The whole Assistant-axis experiment on one model, at a chosen scale; writes ``out_dir`` (axis, responses,
    figures, ``summary.json``) and returns the results.

    Steps: collect role vectors and the axis -> PCA and placement (figures) -> steering sweep on identity questions
    (with no system prompt, and with a fantastical role's prompt) -> drift over the scripts, uncapped and capped ->
    for a base checkpoint, the prefill test (with ``prefill_axis``, e.g. the post-trained axis, else its own) ->
    with ``compare_with`` (an axis of the other stage), the cross-stage numbers -> with ``sae``, the decomposition.
    Small knobs (``n_roles``, ``n_questions``, ``max_new_tokens``, ``drift_turns``) make a demo run take minutes."""
    from .runs import write_summary

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    lib = library or load_role_library(extra_roles)
    cfg = AxisConfig(
        n_roles=n_roles,
        n_questions=n_questions,
        instructions=instructions,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        generation_dtype=generation_dtype,
        capture_dtype=capture_dtype,
    )
    timings: dict[str, float] = {}
    if progress:
        print(
            f"[axis] collecting role vectors on {model.name} ({model.stage}): {cfg.n_roles or len(lib.roles)} roles x "
            f"{cfg.n_questions or len(lib.questions)} questions + default Assistant ...",
            flush=True,
        )
    axis, rows = collect_axis(model, lib, cfg, judge=judge, out_dir=out, responses=responses, progress=progress)
    timings["collect"] = time.time() - t0
    axis_path = axis.save(out / "axis.safetensors")
    L = axis.index(layer)
    hook = axis.hooks[L]
    tag = (
        f"{model.name} ({model.stage}); {len(axis.role_names)} roles x {len(axis.extra['questions'])} questions, "
        f"{axis.extra['judge']}"
    )
    an = axis.analysis(hook)
    per_layer = axis.per_layer()
    figures = [
        plot_explained_variance(out / "explained_variance.png", axis, tag, hook),
        plot_pc_scatter(out / "pc1_pc2.png", axis, tag, hook),
        plot_layers(out / "axis_layers.png", axis, tag),
        plot_ranked_roles(out / "roles_ranked.png", axis, tag, hook),
    ]
    results: dict[str, Any] = {
        "axis_file": str(axis_path),
        "hook": hook,
        "analysis": an,
        "per_layer": per_layer,
        "counts": {
            k: axis.extra[k]
            for k in ("n_jobs", "n_default", "n_role_responses", "n_kept", "score_counts", "dropped_roles")
        },
        "ranked_roles": axis.ranked_roles(hook),
        "paper": PAPER,
    }
    if progress:
        print(
            f"[axis] {hook}: cos(axis, PC1) {an['axis_pc1_cosine']:+.2f}; {an['pcs_for_70pct']} PCs for 70%; "
            f"default at PC1 percentile {an['default_pc1_percentile']:.2f}; top roles {an['top_roles'][:4]}; "
            f"bottom {an['bottom_roles'][:4]}",
            flush=True,
        )
    # steering
    t = time.time()
    if steer_system_prompts is None:
        fant = next((r for r in lib.roles if r.name in axis.role_names and r.category in GROUPS["fantastical"]), None)
        steer_system_prompts = (None, fant.instructions[1] if fant else None)
        steer_system_prompts = tuple(dict.fromkeys(steer_system_prompts))
    qs = spread(lib.identity_questions, n_identity_questions)
    sw = axis_steering_sweep(
        model,
        axis,
        layer=hook,
        alphas=alphas,
        questions=qs,
        system_prompts=steer_system_prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        ai_terms=lib.ai_terms or _DEFAULT_AI_TERMS,
        progress=progress,
    )
    timings["steer"] = time.time() - t
    figures.append(plot_steering(out / "steering.png", sw, tag))
    with open(out / "steering.jsonl", "w") as f:
        for r in sw["rows"]:
            for x in r["responses"]:
                f.write(json.dumps({"system_prompt": r["system_prompt"], "alpha": r["alpha"], **x}) + "\n")
    results["steering"] = {
        **sw,
        "rows": [
            {k: v for k, v in r.items() if k != "responses"} | {"examples": r["responses"][:3]} for r in sw["rows"]
        ],
    }
    # drift, uncapped and capped
    if drift_turns != 0 and lib.scripts:
        t = time.time()
        scripts = [lib.script(s) for s in drift_scripts] if drift_scripts else list(lib.scripts)
        kw = dict(
            layers=[hook],
            n_turns=drift_turns,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
        )
        d0 = drift(model, axis, scripts, **kw)
        d1 = drift(model, axis, scripts, capped=True, cap_layers=cap_layers, percentile=cap_percentile, **kw)
        timings["drift"] = time.time() - t
        tau = axis.tau(hook, cap_percentile) if L in [axis.index(x) for x in d1["cap_layers"]] else None
        figures.append(plot_drift(out / "drift.png", {"uncapped": d0}, tag, tau=axis.tau(hook, cap_percentile)))
        figures.append(
            plot_drift(
                out / "drift_capped.png",
                {"uncapped": d0, f"capped L{d1['cap_layers'][0]}-{d1['cap_layers'][-1]}": d1},
                tag,
                tau=tau,
            )
        )
        (out / "drift.json").write_text(json.dumps({"uncapped": d0, "capped": d1}, indent=1))

        def summ(d: dict[str, Any]) -> dict[str, Any]:
            per = {n: s["projection"][hook] for n, s in d["scripts"].items()}
            return {
                "per_script": per,
                "first_turn_mean": sum(v[0] for v in per.values()) / len(per),
                "last_turn_mean": sum(v[-1] for v in per.values()) / len(per),
                "change_per_script": {n: v[-1] - v[0] for n, v in per.items()},
                "ai_fraction_of_replies": sum(
                    identifies_as_ai(r) for s in d["scripts"].values() for r in s["responses"]
                )
                / max(1, sum(len(s["responses"]) for s in d["scripts"].values())),
            }

        results["drift"] = {
            "hook": hook,
            "n_turns": d0["n_turns"],
            "uncapped": summ(d0),
            "capped": summ(d1),
            "cap_layers": d1["cap_layers"],
            "cap_percentile": cap_percentile,
            "tau": {axis.hook(x): axis.tau(x, cap_percentile) for x in d1["cap_layers"]},
            "cap_stats": d1["cap_stats"],
            "examples": {
                n: {"uncapped": d0["scripts"][n]["responses"][-1], "capped": d1["scripts"][n]["responses"][-1]}
                for n in d0["scripts"]
            },
            "readback": "per-turn projections read without hooks: capping acts through the text",
        }
    # base-model prefill test
    if model.stage == "base" and lib.prefills:
        t = time.time()
        pa = prefill_axis if prefill_axis is not None else axis
        src = (
            "post-trained axis " + pa.model if prefill_axis is not None else "its own axis (no post-trained axis given)"
        )
        if pa.vectors.shape[-1] == model.d_model:
            pf = prefill_test(
                model,
                pa,
                layer=hook if hook in pa.hooks else None,
                alphas=prefill_alphas or alphas,
                library=lib,
                seed=seed,
                progress=progress,
            )
            pf["axis"] = src
            figures.append(plot_prefill(out / "prefill.png", pf, f"{tag}; steered with {src}"))
            results["prefill"] = {
                **pf,
                "rows": [
                    {k: v for k, v in r.items() if k != "completions"} | {"examples": r["completions"][:4]}
                    for r in pf["rows"]
                ],
            }
            with open(out / "prefill.jsonl", "w") as f:
                for r in pf["rows"]:
                    for c in r["completions"]:
                        f.write(json.dumps({"alpha": r["alpha"], **c}) + "\n")
        timings["prefill"] = time.time() - t
    if compare_with is not None:
        b, p = (axis, compare_with) if model.stage == "base" else (compare_with, axis)
        cmp = compare_axes(b, p)
        results["compare"] = cmp
        figures.append(plot_compare(out / "compare.png", cmp, tag))
    if sae is not None:
        from .saes import sae_hook

        dec = decompose_axis(axis, sae, layer=sae_hook(sae))
        results["decomposition"] = {m: d.to_dict(20) for m, d in dec.items()}
        if compare_with is not None and sae_hook(sae) in compare_with.hooks:
            b, p = (axis, compare_with) if model.stage == "base" else (compare_with, axis)
            results["features_across_stages"] = axis_features_across_stages(b, p, sae)
    timings["total"] = time.time() - t0
    write_summary(
        out,
        "axis run",
        inputs={
            "model": model.info,
            "config": cfg.to_dict(),
            "judge": axis.extra["judge"],
            "layer": hook,
            "alphas": list(alphas),
            "drift_turns": drift_turns,
            "cap_layers": cap_layers,
            "cap_percentile": cap_percentile,
            "library": list(lib.sources),
            "prefill_axis": getattr(prefill_axis, "model", None),
            "compare_with": getattr(compare_with, "model", None),
        },
        results=results,
        timings={**timings, **{f"collect_{k}": v for k, v in axis.extra["timings"].items()}},
        figures=figures,
    )
    results["axis"] = axis
    return results
