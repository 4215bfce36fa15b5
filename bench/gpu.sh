#!/usr/bin/env bash
# The GPU figures the README asks for, as one short script for a lent GPU machine (run from the
# repository root after `make setup`, with a CUDA build of torch 2.13.0 in .venv):
#   - cold `segment` of one synthetic case (a fresh process: imports, model load, one case);
#   - a folder of 8 cases in one process: the per-case times after the first are the warm figure;
#   - `neurotriage train` against the bare MONAI loop (bench/bench_training.py) on the GPU.
# Everything it writes goes under ${OUT:-gpu-bench}; bench/results.json gains bench_training.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${OUT:-gpu-bench}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print(torch.__version__)"
"$PY" -m neurotriage synth "$OUT/cases" --n 8 --seed 5 >/dev/null
/usr/bin/time -f "cold segment, one case: %e s wall, %M KB peak RSS" \
  "$PY" -m neurotriage segment "$OUT/cases/SYN_0000" --out "$OUT/one_seg.nii.gz" 2>&1 | tee "$OUT/cold.txt"
/usr/bin/time -f "folder of 8 cases: %e s wall, %M KB peak RSS" \
  "$PY" -m neurotriage segment "$OUT/cases" --out "$OUT/segs" 2>&1 | tr '\r' '\n' | grep -E "wrote|folder" | tee "$OUT/folder.txt"
"$PY" -m bench bench_training | tee "$OUT/training.txt"
