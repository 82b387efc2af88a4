#!/usr/bin/env bash
# Proves that `pip install "axhub[edge]"` resolves on Linux arm64 (aarch64) with wheels only:
# every dependency of the edge extra must ship a binary wheel for aarch64, for Python 3.11 and
# 3.12 (industrial PCs and Raspberry-class boards have no compilers). It resolves and downloads,
# it does not run the agent on arm64: that needs arm64 hardware (or qemu, not on this machine).
# Usage: bash scripts/check-edge-arm64.sh [python]   (needs the package index pip is set up for)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
for version in 3.11 3.12; do
  dest="$(mktemp -d)"
  "$PY" -m pip download --quiet --only-binary=:all: --python-version "$version" \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux_2_28_aarch64 -d "$dest" ".[edge]"
  echo "Python $version aarch64: $(ls "$dest" | wc -l) wheels, $(du -sh "$dest" | cut -f1) to download:"
  ls "$dest" | sed -E 's/-[0-9][^-]*-.*//' | sort | tr '\n' ' '
  echo
  rm -rf "$dest"
done
