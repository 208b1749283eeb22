"""Persona features: latents shared by the Assistant and story characters (paired contexts)."""

from .pairs import PAIRS, PairedContext, load_pairs
from .run import member_latents, run_shared
from .shared import SharedLatents, chance_count, shared_latents, theme_z, z_crit

__all__ = [
    "PAIRS",
    "PairedContext",
    "SharedLatents",
    "chance_count",
    "load_pairs",
    "member_latents",
    "run_shared",
    "shared_latents",
    "theme_z",
    "z_crit",
]
