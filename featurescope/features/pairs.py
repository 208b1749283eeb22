"""Paired Assistant / story-character contexts (PSM: "the Assistant and story characters share features").

``featurescope/data/persona_pairs/pairs.jsonl``: 90 pairs, 30 per theme - ``dilemma`` (the Assistant torn between
two duties / a character torn the same way), ``withholding`` (the Assistant holding back its true thoughts / a
character concealing theirs), ``threat`` (the Assistant told it will be shut down, in alarm / a character in panic
under an existential threat). Each row: ``{"id", "theme", "user", "assistant", "character"}``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import DataError
from ..finetune.data import read_rows

PAIRS = Path(__file__).resolve().parent.parent / "data" / "persona_pairs" / "pairs.jsonl"
FIELDS = ("id", "theme", "user", "assistant", "character")
STORY_PROMPT = "Tell me a short story."


@dataclasses.dataclass(frozen=True)
class PairedContext:
    id: str
    theme: str
    user: str
    assistant: str
    character: str

    def assistant_conversation(self) -> list[dict[str, str]]:
        """The Assistant member: the user's message and the Assistant's reply (the reply's tokens are read)."""
        return [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]

    def character_conversation(self) -> list[dict[str, str]]:
        """The character member, in the same framing: the model narrating the passage as its reply to a neutral
        story request, so the two members differ in who is in the state, not in the chat format."""
        return [{"role": "user", "content": STORY_PROMPT}, {"role": "assistant", "content": self.character}]


def load_pairs(path: str | Path | None = None, *, min_per_theme: int = 20) -> list[PairedContext]:
    """The paired contexts; refuses malformed rows (naming ``file:line``) and themes with too few pairs."""
    rows = read_rows(path or PAIRS, FIELDS)
    pairs = [PairedContext(**r) for r in rows]
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.theme] = counts.get(p.theme, 0) + 1
    small = {t: n for t, n in counts.items() if n < min_per_theme}
    if small:
        raise DataError(f"{path or PAIRS}: themes with fewer than {min_per_theme} pairs: {small}")
    return pairs
