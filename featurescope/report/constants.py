"""Report: constants."""

from __future__ import annotations

from ..paper import NUMBERS

#: Paper numbers the report prints next to ours.
# (paper, number, what) per comparison, from featurescope.paper (the one home of published numbers).
PAPER = {
    k: (NUMBERS[k].paper.split(" (")[0], NUMBERS[k].text, NUMBERS[k].what)
    for k in ("monitor_r", "steering", "transfer", "new_features", "axis_pc1", "axis_pcs")
}

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
MAX_ASSET_BYTES = 8 << 20  # figures larger than this are listed, not embedded
SKIP_COMMANDS = {"report"}
