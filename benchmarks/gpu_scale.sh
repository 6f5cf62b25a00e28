#!/usr/bin/env bash
# GPU checks at photo scale, in one run (issues 20-23; figures in benchmarks/RESULTS.md):
# the data path under a ResNet-50 bf16 step at 224 px, the nvJPEG decode of the image store,
# DINO ViT-small/16 eager and compiled, the z steps' share of masked latent prediction, and
# --batch-size auto. Data: synthetic photo-sized JPEGs (benchmarks/data_path.py make-photos).
# Needs torch/torchvision/typer/rich/safetensors/pillow/timm; sslcli itself from this tree.
# Run from the repository root: bash benchmarks/gpu_scale.sh
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export SSLCLI_CACHE_DIR=/tmp/sslcli-cache
PY=${PYTHON:-python3}
PHOTOS=${PHOTOS:-/tmp/photos}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
if ! $PY -c "from torchcodec.decoders import decode_jpeg" 2>/dev/null; then
    # TorchCodec's image decoder needs a newer torch than some machines have: the same batched
    # nvJPEG decode through torchvision stands in for it (this script only)
    echo "no torchcodec.decoders.decode_jpeg here: decoding through torchvision.io.decode_jpeg"
    mkdir -p /tmp/shim/torchcodec/decoders
    : > /tmp/shim/torchcodec/__init__.py
    cat > /tmp/shim/torchcodec/decoders/__init__.py <<'PY'
from torchvision.io import ImageReadMode
from torchvision.io import decode_jpeg as _decode


def decode_jpeg(data, mode="RGB", device="cpu"):
    return _decode(data, mode=ImageReadMode.RGB, device=device)
PY
    export PYTHONPATH="/tmp/shim:$PYTHONPATH"
fi
[ -d "$PHOTOS" ] || $PY benchmarks/data_path.py make-photos --out "$PHOTOS" --count "${COUNT:-3000}"
speed() {
    timeout "${LIMIT:-150}" $PY benchmarks/siamese_speed.py --device cuda --data "$PHOTOS" \
        --cache-dir /tmp/sslcli-bench "$@" 2>&1 | grep -E "img/s|take|Error|error"
}

echo "== data path under ResNet-50, bf16, 224 px, batch 256 (ratio = ours / ceiling)"
speed --backbone resnet50 --size 224 --batch-size 256 --steps 20

echo "== nvJPEG: the image store's batched decode on the GPU against CPU threads"
$PY - "$PHOTOS" <<'PY'
import os, sys, time
from pathlib import Path
import torch
from sslcli.data.folder import scan_image_folder
from sslcli.data.store import open_store
stored = open_store(scan_image_folder(Path(sys.argv[1])).paths, 256, Path("/tmp/sslcli-bench"))
for device in (torch.device("cuda"), torch.device("cpu")):
    stored.tensors(list(range(256)), device)  # warm-up
    torch.cuda.synchronize()
    start, count = time.perf_counter(), 0
    for first in range(0, min(len(stored.kept), 2560), 256):
        count += len(stored.tensors(list(range(first, first + 256)), device))
    torch.cuda.synchronize()
    print(f"decode on {device}: {count / (time.perf_counter() - start):.0f} images/s "
          f"({count} stored JPEGs, shorter side 256; {os.cpu_count()} CPU cores)")
PY

echo "== DINO, ViT-small/16, 224 px, 2 x 224 + 6 x 96 views, bf16, batch 128"
speed --method dino --backbone vit-small --size 224 --batch-size 128 --steps 15

echo "== masked latent prediction, ViT-small/16, 224 px, bf16, batch 128: the z steps' share"
LIMIT=300 speed --method masked-latent --backbone vit-small --size 224 --batch-size 128 --steps 15 --repeats 2

echo "== --batch-size auto (one epoch of $PHOTOS each)"
for args in "--backbone resnet50" "--method dino --backbone vit-small"; do
    rm -rf /tmp/auto-run
    timeout 300 $PY -m sslcli train-siamese "$PHOTOS" $args --size 224 --batch-size auto \
        --epochs 1 --out /tmp/auto-run --cache-dir /tmp/sslcli-bench --json > /tmp/auto.json 2> /tmp/auto.err
    echo "exit $? ($args)"; grep -E "auto|error" /tmp/auto.err
    $PY -c "import json; c = json.load(open('/tmp/auto-run/config.json')); r = json.load(open('/tmp/auto-run/result.json')); print('config batch', c['batch_size'], 'lr', round(c['lr'], 4), '| result step', r['step'])"
done

echo "== DINO as above, the backbone compiled (--compile)"
LIMIT=${COMPILE_LIMIT:-240} speed --method dino --backbone vit-small --size 224 --batch-size 128 --steps 15 --compile
