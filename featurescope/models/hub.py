"""Models: network."""

from __future__ import annotations

import os
import re
import socket
from functools import lru_cache


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Fast check that the Hugging Face hub answers (transformers itself retries for ~25 s before failing)."""
    if (
        os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    ):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0]
    try:
        socket.getaddrinfo(host, 443)
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hf_cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache  # heavy: huggingface_hub (~0.2 s)

        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except Exception:
        return False
