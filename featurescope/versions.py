"""Installed versions of the libraries featurescope's numbers depend on, and the known upstream breaks.

``python -m featurescope.versions`` prints them (CI does, before the tests) and exits non-zero when a known-broken
combination is installed. Versions come from the installed distributions' metadata, so nothing heavy is imported
(transformer_lens 3.x has no ``__version__``; importing sae_lens only to ask costs ~0.4 s).
"""

from __future__ import annotations

import dataclasses
import platform
import sys
from importlib import metadata

import torch

# Distributions whose versions go into every summary.json (distribution name -> key in the record).
TRACKED: dict[str, str] = {
    "torch": "torch",
    "transformer-lens": "transformer_lens",
    "sae-lens": "sae_lens",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "peft": "peft",
    "safetensors": "safetensors",
    "numpy": "numpy",
}


def dist_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"?"`` when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _release(v: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
        if digits != part:
            break
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class KnownBreak:
    """An upstream combination known to make featurescope produce wrong results."""

    package: str
    broken_from: tuple[int, ...]
    affects: str
    cause: str
    fixed_when: str
    workaround: str = ""  # how featurescope works around it ("" = not worked around: a hard failure)
    with_package: str = ""  # the break needs this other distribution too, below ``with_below``
    with_below: tuple[int, ...] = ()

    def applies(self, versions: dict[str, str]) -> bool:
        v = versions.get(self.package, "?")
        if v == "?" or _release(v) < self.broken_from:
            return False
        if self.with_package:
            w = versions.get(self.with_package, "?")
            return w != "?" and _release(w) < self.with_below
        return True


KNOWN_BREAKS: tuple[KnownBreak, ...] = (
    KnownBreak(
        package="transformers",
        broken_from=(5, 24),
        affects="cached generation through TransformerLens' TransformerBridge (offline:smollm2-135m-instruct, any "
        "local or hub checkpoint booted as a bridge); HookedTransformer models (Gemma) are not affected",
        cause="transformers 5.24 passes the KV cache to attention layers as `cache=` (was `past_key_values=`, now a "
        "deprecated alias); TransformerLens 3.9's AttentionBridge._update_kv_cache reads only "
        "`past_key_values`, so the cache is never filled and each decode step attends to itself alone: greedy "
        "answers become 'The-----'",
        fixed_when="TransformerLens' bridge reads `cache`",
        workaround="featurescope.models.bridge_kv_cache_compat copies `cache` to `past_key_values` with a forward "
        "pre-hook on each attention bridge of every bridge model featurescope loads",
        with_package="transformer-lens",
        with_below=(3, 10),  # seen with 3.9.0; a later release is checked by the integration tests, not assumed
    ),
)


def versions() -> dict[str, str]:
    """featurescope, Python and every tracked library's installed version."""
    from . import __version__  # cycle: featurescope/__init__ imports versions before __version__ is set

    out = {"featurescope": __version__, "python": sys.version.split()[0]}
    for dist, key in TRACKED.items():
        out[key] = dist_version(dist)
    return out


def known_breaks(vs: dict[str, str] | None = None) -> list[KnownBreak]:
    """The known upstream breaks that apply to the installed versions."""
    vs = versions() if vs is None else vs
    by_dist = {dist: vs.get(key, "?") for dist, key in TRACKED.items()}
    return [b for b in KNOWN_BREAKS if b.applies(by_dist)]


def environment() -> dict[str, object]:
    """The record written into every ``summary.json``: versions, platform, device and threads."""
    return {
        **versions(),
        "platform": platform.platform(),
        "cuda": torch.cuda.is_available(),
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    vs = versions()
    print("featurescope environment: " + ", ".join(f"{k} {v}" for k, v in vs.items()))
    found = known_breaks(vs)
    for b in found:
        head = "known upstream break (worked around)" if b.workaround else "KNOWN UPSTREAM BREAK"
        print(
            f"{head}: {b.package} {'.'.join(map(str, b.broken_from))}+ affects {b.affects}.\n  cause: {b.cause}"
            f"\n  {'workaround: ' + b.workaround if b.workaround else 'fixed when: ' + b.fixed_when}",
            file=sys.stderr,
        )
    return 1 if any(not b.workaround for b in found) else 0


if __name__ == "__main__":
    raise SystemExit(main())
