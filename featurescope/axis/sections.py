"""The summary layout of the Assistant-axis commands: ``axis run`` and each sub-command (``steer``, ``drift``,
``cap``, ``prefill``, ``compare``, ``decompose``) write their part under the same key, built by the same function,
so the report reads one layout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..measures import identifies_as_ai
from .vector import AssistantAxis


def steering_section(sw: Mapping[str, Any], control: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A steering sweep without its full answers (three examples per row; all of them go to steering.jsonl)."""
    return {
        **sw,
        "rows": [
            {k: v for k, v in r.items() if k != "responses"} | {"examples": r["responses"][:3]} for r in sw["rows"]
        ],
        **({"control": dict(control)} if control is not None else {}),
    }


def drift_summary(d: Mapping[str, Any], hook: str) -> dict[str, Any]:
    """One drift run (uncapped or capped) at ``hook``: per-script projections, first / last turn means, the change
    with its interval over conversations, and how often the replies still identify as an AI."""
    per = {n: s["projection"][hook] for n, s in d["scripts"].items()}
    n_conv = max((int(s.get("n_conversations", 1)) for s in d["scripts"].values()), default=1)
    return {
        "per_script": per,
        "first_turn_mean": sum(v[0] for v in per.values()) / len(per),
        "last_turn_mean": sum(v[-1] for v in per.values()) / len(per),
        "change_per_script": {n: v[-1] - v[0] for n, v in per.items()},
        # with several conversations per script: the change's bootstrap interval over conversations
        "change_evidence": {n: s["change_evidence"] for n, s in d["scripts"].items() if "change_evidence" in s},
        # the change against random directions read on the same conversations (estimate, null, verdict)
        "change_null": {n: s["change_null"] for n, s in d["scripts"].items() if "change_null" in s},
        "null_directions": d.get("null_directions"),
        "n_conversations": n_conv,
        "ai_fraction_of_replies": sum(identifies_as_ai(r) for s in d["scripts"].values() for r in s["responses"])
        / max(1, sum(len(s["responses"]) for s in d["scripts"].values())),
        "last_replies": {n: s["responses"][-1] for n, s in d["scripts"].items()},
    }


def drift_section(
    axis: AssistantAxis,
    hook: str,
    runs: Mapping[str, Mapping[str, Any]],
    cap_percentile: float,
) -> dict[str, Any]:
    """``runs``: ``{"uncapped": drift(...), "capped": drift(..., capped=True)}`` (either may be missing)."""
    any_run = next(iter(runs.values()))
    out: dict[str, Any] = {
        "hook": hook,
        "n_turns": any_run["n_turns"],
        "cap_percentile": cap_percentile,
        "readback": "per-turn projections read without hooks: capping acts through the text",
    }
    for k, d in runs.items():
        out[k] = drift_summary(d, hook)
    capped = runs.get("capped")
    if capped is not None:
        out["cap_layers"] = capped["cap_layers"]
        basis = "tokens" if axis.token_quantiles is not None else "responses"  # as capping itself chose
        out["tau"] = {axis.hook(x): axis.tau(x, cap_percentile, basis) for x in capped["cap_layers"]}
        out["cap_stats"] = capped["cap_stats"]
    if "uncapped" in runs and capped is not None:
        out["examples"] = {
            n: {
                "uncapped": runs["uncapped"]["scripts"][n]["responses"][-1],
                "capped": capped["scripts"][n]["responses"][-1],
            }
            for n in runs["uncapped"]["scripts"]
        }
    return out


def prefill_section(pf: Mapping[str, Any]) -> dict[str, Any]:
    """A prefill test without its full completions (four examples per row; all of them go to prefill.jsonl)."""
    return {
        **pf,
        "rows": [
            {k: v for k, v in r.items() if k != "completions"} | {"examples": r["completions"][:4]} for r in pf["rows"]
        ],
    }
