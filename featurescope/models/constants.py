"""Models: constants."""

from __future__ import annotations

from typing import Literal

Stage = Literal["base", "post-trained"]
OFFLINE_PREFIX = "offline:"
