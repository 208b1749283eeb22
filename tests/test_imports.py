"""Every featurescope module imports on its own in a fresh interpreter, with no side effects (issue 15)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import featurescope

MODULES = sorted(m.name for m in pkgutil.walk_packages(featurescope.__path__, "featurescope."))

# Importing must not touch the network (the probe makes any connection attempt fail) nor need anything but the
# package: each module alone, so an import cycle that only works in one order shows up here.
PROBE = """
import socket
def no_network(*a, **k):
    raise RuntimeError("network access at import time")
socket.socket.connect = no_network
socket.create_connection = no_network
import {module}
"""


def _import_alone(module: str) -> tuple[str, int, str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    return module, r.returncode, r.stdout + r.stderr


def test_every_module_imports_alone_in_a_fresh_interpreter():
    assert len(MODULES) >= 20
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_import_alone, MODULES))
    failed = {m: out.strip().splitlines()[-1] if out.strip() else f"exit {rc}" for m, rc, out in results if rc != 0}
    assert not failed, failed
