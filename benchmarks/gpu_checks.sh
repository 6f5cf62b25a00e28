#!/usr/bin/env bash
# The GPU checks of the foundation and augment work, in one run on a machine with a GPU and
# torch/torchvision/typer/rich/safetensors/pillow installed (sslcli itself from this tree).
# Run from the repository root: bash benchmarks/gpu_checks.sh
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"

echo "== runtime resolution on a GPU machine"
$PY - <<'PY'
import os, torch
from sslcli.engine.launch import plan_launch
from sslcli.engine.runtime import make_runtime
from sslcli.errors import SSLError
count = torch.cuda.device_count()
plan = plan_launch(None, 1, count, {})
runtime = make_runtime(plan.device_type, "auto", 0)
print("default plan:", plan, "| auto precision:", runtime.precision, "| device:", runtime.device)
try:
    plan_launch(count + 1, 1, count, {})
except SSLError as error:
    print("asking for too many GPUs:", error)
layer = torch.nn.Linear(8, 8).to(runtime.device)
with runtime.autocast():
    print("autocast output dtype:", layer(torch.ones(2, 8, device=runtime.device)).dtype)
PY

echo "== NCCL group through torchrun (1 process), gather/all-reduce with gradients"
cat > /tmp/nccl_check.py <<'PY'
import os, torch
from sslcli.engine.collectives import all_reduce_sum, gather, world_size
from sslcli.engine.launch import launch, plan_launch

def worker(runtime):
    import torch.distributed as dist
    x = torch.arange(6.0, device=runtime.device, requires_grad=True)
    (gather(x.view(3, 2)).sum() + all_reduce_sum(x).pow(2).sum()).backward()
    print("backend", dist.get_backend(), "world", world_size(), "grad", x.grad.tolist())

launch(plan_launch(1, 1, torch.cuda.device_count(), os.environ), "auto", 0, worker)
PY
$PY -m torch.distributed.run --nproc-per-node 1 /tmp/nccl_check.py

echo "== augment on the GPU vs the CPU: same parameters, pixel differences"
rm -rf /tmp/aug_gpu /tmp/aug_cpu
time $PY -m sslcli augment sample_data/photos --out /tmp/aug_gpu --gpus 1 --json > /tmp/aug_gpu.json
time $PY -m sslcli augment sample_data/photos --out /tmp/aug_cpu --gpus 0 --json > /tmp/aug_cpu.json
$PY - <<'PY'
import json
from pathlib import Path
import numpy as np
from PIL import Image
gpu, cpu = (json.loads(Path(f"/tmp/aug_{d}.json").read_text()) for d in ("gpu", "cpu"))
same = [a["params"] == b["params"] for a, b in zip(gpu["views"], cpu["views"])]
print("views", len(same), "identical parameters:", all(same))
diffs = []
for a, b in zip(gpu["views"], cpu["views"]):
    x = np.asarray(Image.open(a["path"]), dtype=np.int16)
    y = np.asarray(Image.open(b["path"]), dtype=np.int16)
    diffs.append(np.abs(x - y))
d = np.concatenate([v.ravel() for v in diffs])
print(f"pixel |gpu-cpu|: max {d.max()}, mean {d.mean():.4f}, share of values differing {np.mean(d > 0):.4%}")
PY

echo "== augmentation speed (GPU) and share of a ResNet-50 step"
$PY benchmarks/augment_speed.py --device cuda --seconds 3 --threads 1 --stages
