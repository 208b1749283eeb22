"""Persona features: latents shared by the Assistant and story characters (paired contexts), interpretation scores
of SAE latents against random latents of matched density, and their typed results (:mod:`.results`)."""

from .pairs import PAIRS, PairedContext, load_pairs
from .results import (
    InterpretedLatent,
    InterpretResult,
    InterpretView,
    SharedLatent,
    SharedLatentsResult,
    SharedTheme,
    load_result,
)
from .run import member_latents, run_shared
from .shared import SharedLatents, chance_count, shared_latents, theme_z, z_crit

__all__ = [
    "PAIRS",
    "InterpretResult",
    "InterpretView",
    "InterpretedLatent",
    "PairedContext",
    "SharedLatent",
    "SharedLatents",
    "SharedLatentsResult",
    "SharedTheme",
    "chance_count",
    "load_pairs",
    "load_result",
    "member_latents",
    "run_shared",
    "shared_latents",
    "theme_z",
    "z_crit",
]
