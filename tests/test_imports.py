"""Every featurescope module imports on its own in a fresh interpreter, with no side effects (issue 15)."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

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


def _local_imports_without_reason() -> list[str]:
    """``path:line: statement`` for each import inside a function (at any depth) with no ``#`` comment on its lines."""
    root = Path(featurescope.__file__).parent
    missing: set[tuple[str, int, str]] = set()
    for path in sorted(root.rglob("*.py")):
        src = path.read_text(encoding="utf-8")
        lines = src.splitlines()
        for func in ast.walk(ast.parse(src)):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                # an import statement holds no string literal, so a "#" on its lines starts a comment
                end = node.end_lineno or node.lineno
                if not any("#" in lines[i - 1] for i in range(node.lineno, end + 1)):
                    missing.add((str(path.relative_to(root.parent)), node.lineno, lines[node.lineno - 1].strip()))
    return [f"{path}:{line}: {text}" for path, line, text in sorted(missing)]


def test_function_local_imports_give_a_reason():
    """Imports sit at module top; one inside a function (an optional or heavy dependency, or an import cycle) says
    why in a trailing comment, e.g. ``import matplotlib  # heavy: ...`` (issue 15)."""
    missing = _local_imports_without_reason()
    assert not missing, "function-local imports without a reason comment:\n" + "\n".join(missing)


@pytest.mark.integration
def test_shipped_saes_load_by_name_from_a_built_wheel(tmp_path):
    """The wheel carries the SAEs (featurescope/data/saes, a symlink to saes/ in the checkout): a pip-installed copy,
    outside any checkout, resolves featurescope:MODEL/HOOK to a folder inside the installed package."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(root),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "w"),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "w").glob("featurescope-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import featurescope.saes as s; p = s.resolve_shipped_sae('featurescope:gemma-3-270m/layer_9_resid_post');"
        "print(p); print(s.load_sae('featurescope:gemma-3-270m/layer_9_resid_post').cfg.d_sae)"
    )
    env = {k: v for k, v in os.environ.items() if k != "FEATURESCOPE_SAES"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    path, d_sae = out.stdout.split()
    assert path.startswith(str(tmp_path / "site")) and int(d_sae) > 0
