#!/usr/bin/env bash
# GPU figures of train-siamese and augment, in one run (see benchmarks/RESULTS.md).
# Run from the repository root: bash benchmarks/gpu_siamese.sh
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SSLCLI_CACHE_DIR=/tmp/sslcli-cache
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name --format=csv,noheader
echo "== train-siamese end to end on the GPU (digits, resnet18, 32 px, bf16)"
$PY -m sslcli train-siamese sample_data/digits --backbone resnet18 --size 32 --epochs 10 \
    --batch-size 256 --out /tmp/gpu-run --knn-every 5 --json | tail -n 12
echo "== training speed vs the compute ceiling"
$PY benchmarks/siamese_speed.py --device cuda --backbone resnet18 --size 32 --batch-size 256 --steps 30 2>&1 | grep -v "━"
$PY benchmarks/siamese_speed.py --device cuda --backbone resnet50 --size 224 --batch-size 256 --steps 12 2>&1 | grep -v "━"
echo "== augmentation speed (GPU) and share of a ResNet-50 step"
[ "${WITH_AUGMENT:-1}" = 1 ] && $PY benchmarks/augment_speed.py --device cuda --seconds 3 --threads 1
