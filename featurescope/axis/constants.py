"""Constants of the Assistant-axis analysis: the role library's place and limits, categories, paper numbers."""

from __future__ import annotations

import re
from pathlib import Path

from ..paper import NUMBERS

ROLES_DIR = Path(__file__).parent.parent / "data" / "roles"
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
NON_ROLE_FILES = {"default.yaml", "questions.yaml", "prefills.yaml", "identity.yaml"}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

#: Paper numbers (Lu et al.) quoted next to ours in summaries.
# The paper's numbers, from featurescope.paper (the one home of published numbers); this layout is kept for the
# summaries that already carry it.
PAPER = {
    "pcs_for_70pct": NUMBERS["axis_pcs"].value,
    "axis_pc1_cosine_middle_layer": NUMBERS["axis_pc1"].text,
    "base_vs_instruct_top3_pc_cosines_gemma2_27b": NUMBERS["base_vs_instruct_top3_pc_cosines"].value,
    "base_vs_instruct_role_vector_cosines": NUMBERS["base_vs_instruct_role_vector_cosines"].text,
}
