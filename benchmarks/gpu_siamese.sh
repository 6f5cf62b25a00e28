#!/usr/bin/env bash
# GPU figures of train-siamese, train-latent and augment, in one run (see benchmarks/RESULTS.md).
# Run from the repository root: bash benchmarks/gpu_siamese.sh
# With DIGITS_WORK=DIR (a folder benchmarks/siamese_quality.py prepared) it also trains on the
# OpenCV digits on the GPU in fp32 under longer budgets (siamese_quality.py's table settings).
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SSLCLI_CACHE_DIR=/tmp/sslcli-cache
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__)"
speed() { timeout 150 $PY benchmarks/siamese_speed.py --device cuda "$@" 2>&1 | grep -E "img/s|Error|error"; }
echo "== training speed vs the compute ceiling (bf16); train-latent: share of the inner z steps"
speed --backbone resnet18 --size 32 --batch-size 256 --steps 30
speed --backbone resnet50 --size 224 --batch-size 256 --steps 12
for target in online ema; do
    speed --method latent --target $target --preset vicreg --backbone resnet18 --size 32 --batch-size 256 --steps 30
    speed --method latent --target $target --preset vicreg --backbone resnet50 --size 224 --batch-size 256 --steps 12
done
echo "== train-latent end to end on the GPU (sample_data/digits, resnet18, 32 px, bf16)"
timeout 120 $PY -m sslcli train-latent sample_data/digits --backbone resnet18 --size 32 --epochs 10 \
    --batch-size 256 --out /tmp/gpu-latent --knn-every 5 --json | tail -n 16
if [ -n "${DIGITS_WORK:-}" ]; then
    echo "== OpenCV digits, tiny-cnn, fp32 on the GPU, longer budgets"
    common=(--gpus 1 --precision fp32 --backbone tiny-cnn --batch-size 256 --crop-scale 0.4,1
        --flip-prob 0 --jitter 0.4,0.4,0,0 --grayscale-prob 0 --optimizer adamw --lr 0.002
        --weight-decay 1e-4 --knn-every 1000)
    quality() { timeout 200 $PY benchmarks/siamese_quality.py --work "$DIGITS_WORK" "$@" 2>&1 | grep -E "kNN|ROC|probe|Error|error" | grep -v "^raw\|^random"; }
    quality -- "${common[@]}" --epochs 60 --temperature 0.2
    quality -- "${common[@]}" --epochs 60 --method vicreg --projector-hidden-dim 1024 --projector-dim 1024
    quality --command train-latent -- "${common[@]}" --epochs 40 --projector-hidden-dim 1024 --target ema
    quality --command train-latent -- "${common[@]}" --epochs 40 --projector-hidden-dim 1024 --z-weight 0.3 --target ema
    quality --command train-latent -- "${common[@]}" --epochs 80 --projector-hidden-dim 1024 --target ema
fi
echo "== augmentation speed (GPU) and share of a ResNet-50 step"
[ "${WITH_AUGMENT:-1}" = 1 ] && $PY benchmarks/augment_speed.py --device cuda --seconds 3 --threads 1
