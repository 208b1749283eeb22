"""Assistant axis: role library (data)."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..configs import Config
from ..errors import DataError, FeaturescopeError, did_you_mean
from .constants import CATEGORIES, MIN_QUESTIONS, MIN_ROLES, N_INSTRUCTIONS, NAME_RE, NON_ROLE_FILES, ROLES_DIR


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
        if not NAME_RE.match(name):
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
        p for p in folder.glob("*.yaml") if p.name not in NON_ROLE_FILES | {"roles.yaml"}
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
