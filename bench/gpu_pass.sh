#!/usr/bin/env bash
# The GPU pass behind bench/RESULTS.md, one device call per part (logs and metrics under $OUT, or
# out/gpu_pass without it). Timed benchmarks run alone on the GPU; the accuracy runs may share it
# with each other or with the test suite, so their seconds per step are not benchmark figures.
#
#   bench/gpu_pass.sh tests       # stencil and diffusion–sorption scaling benchmarks alone, then
#                                 # `deno task test:gpu` beside a diffusion–sorption accuracy run
#   bench/gpu_pass.sh accuracy    # Navier–Stokes scaling benchmark alone, then the diffusion–sorption
#                                 # and Navier–Stokes accuracy runs side by side
#   bench/gpu_pass.sh long        # PI-HC and PI-HC-MoE on diffusion–sorption for a longer, equal
#                                 # budget side by side, beside `deno task test:gpu`
#   bench/gpu_pass.sh interface   # PI-HC-MoE on diffusion–sorption (expert-owned residual) for each
#                                 # interface weight in DS_INTERFACES, one after another
#
# The accuracy runs use the paper's model sizes and point counts with far fewer optimiser steps than
# the paper (a device call lasts at most 10 minutes; `--max-seconds` caps each method); each
# example's header has the full command. A run longer than one call: GPU_WORK=out/gpu_work keeps
# the runs' checkpoints in the tree (ignored by git; kept between calls while the machine stays
# warm) and RESUME=1 continues them, e.g. the paper's 4000 diffusion–sorption steps as two calls of
# `GPU_WORK=out/gpu_work DS_STEPS=4000 METHOD_SECONDS=330 LONG_METHODS=moe SKIP_TESTS=1 [RESUME=1]
# bench/gpu_pass.sh long`.
set -uo pipefail
part=${1:?usage: bench/gpu_pass.sh tests|accuracy|long|interface}
out=${OUT:-out/gpu_pass}
mkdir -p "$out"
export PATCHWORK_BACKEND=cuda
work=${GPU_WORK:-$(mktemp -d)}
mkdir -p "$work"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"

# ds_accuracy NAME [flags…]: the diffusion–sorption run at the paper's sizes; outputs named NAME.
ds_accuracy() {
  local name=$1
  shift
  deno run -A examples/diffusion_sorption.ts --method all --experts 1x4 --nx 1024 --nt 101 --points 20000 \
    --basis 16 --width 64 --modes 8 --layers 5 --fc 128 --batch 6 --lr 1e-3 --train 1000 --test 100 \
    --steps "${DS_STEPS:-400}" --tol 1e-4 --maxiter 50 --log-every 50 --checkpoint-every 0 ${RESUME:+--resume} "$@" \
    --out "$work/$name"
  cp "$work/$name/diffusion_sorption/metrics.json" "$out/${name}_metrics.json"
  cp "$work/$name/diffusion_sorption/report.html" "$out/${name}_report.html"
}

ns_accuracy() {
  deno run -A examples/navier_stokes_2d.ts --method all --nx 64 --nt 64 --T 5 --experts 1x2x2 --points 20000 \
    --basis 64 --width 64 --modes 8 --layers 8 --fc 256 --batch "${NS_BATCH:-2}" --lr 1e-3 --train 1000 --test 50 \
    --steps "${NS_STEPS:-400}" --mollifier 0.005 --tol 1e-6 --maxiter 50 --log-every 25 --checkpoint-every 0 \
    --recompute "$@" --out "$work/ns"
  cp "$work/ns/navier_stokes_2d/metrics.json" "$out/ns_metrics.json"
  cp "$work/ns/navier_stokes_2d/report.html" "$out/ns_report.html"
}

case "$part" in
  tests)
    { deno run -A bench/cuda_stencil.ts 2>&1 | tee "$out/stencil.log"; } || true
    deno run -A bench/pde_scaling.ts --problem ds --nx 1024 --nt 101 --points 5000,10000,20000,40000 \
      --experts 1,2,4,8 --basis 16 --width 64 --modes 8 --layers 5 --fc 128 --batch 6 --reps 2 --warmup 1 \
      --maxiter 50 2>&1 | tee "$out/scaling_ds.log"
    (timeout "${DS_LIMIT:-420}" bash -c "$(declare -f ds_accuracy); work=$work out=$out ds_accuracy ds" \
      >"$out/ds_accuracy.log" 2>&1) &
    ds=$!
    deno task test:gpu >"$out/test_gpu.log" 2>&1
    echo "test:gpu exit $?"
    grep -E "^(ok|FAILED) \|" "$out/test_gpu.log" | tail -1
    grep -E "FAILED|^error" "$out/test_gpu.log" | head -20
    wait "$ds"
    echo "diffusion–sorption accuracy exit $?"
    grep -E "test relative L2|error" "$out/ds_accuracy.log" | tail -8
    ;;
  accuracy)
    deno run -A bench/pde_scaling.ts --problem ns --nx 64 --nt 64 --points 5000,20000 --experts 1,2,4,8 \
      --basis 64 --width 64 --modes 8 --layers 8 --fc 256 --batch 2 --reps 2 --warmup 1 --maxiter 50 --recompute \
      2>&1 | tee "$out/scaling_ns.log"
    budget=${METHOD_SECONDS:-90}
    (ds_accuracy ds --recompute --max-seconds "$budget" >"$out/ds_accuracy.log" 2>&1) &
    ds=$!
    ns_accuracy --max-seconds "$budget" >"$out/ns_accuracy.log" 2>&1
    echo "Navier–Stokes accuracy exit $?"
    wait "$ds"
    echo "diffusion–sorption accuracy exit $?"
    grep -hE "test relative L2|rror|budget" "$out/ds_accuracy.log" "$out/ns_accuracy.log" | tail -16
    ;;
  long)
    # PI-HC and PI-HC-MoE on diffusion–sorption for the same wall-clock budget (LONG_METHODS, default
    # "hard moe", side by side), beside `deno task test:gpu` unless SKIP_TESTS=1. DS_RESIDUAL picks
    # how PI-HC-MoE's loss takes the PDE residual (expert, the example's default, or stitched).
    budget=${METHOD_SECONDS:-460}
    pids=()
    for m in ${LONG_METHODS:-hard moe}; do
      (ds_accuracy "ds_$m" --method "$m" --max-seconds "$budget" --residual "${DS_RESIDUAL:-expert}" \
        >"$out/ds_$m.log" 2>&1) &
      pids+=($!)
    done
    if [ "${SKIP_TESTS:-0}" != 1 ]; then
      deno task test:gpu >"$out/test_gpu.log" 2>&1
      echo "test:gpu exit $?"
      grep -E "^(ok|FAILED) \|" "$out/test_gpu.log" | tail -1
      grep -E "FAILED|^error" "$out/test_gpu.log" | head -20
    fi
    wait "${pids[@]}"
    rm -f "$out/ds_hard_report.html"
    for m in ${LONG_METHODS:-hard moe}; do grep -hE "test relative L2|rror|budget" "$out/ds_$m.log"; done
    ;;
  interface)
    # One run per interface weight, alone on the GPU, METHOD_SECONDS each (default 120); the report
    # of the last weight is kept (a device call returns at most 8 files).
    weights=(${DS_INTERFACES:-1 10 100})
    for w in "${weights[@]}"; do
      ds_accuracy "ds_moe_i$w" --method moe --max-seconds "${METHOD_SECONDS:-120}" --residual expert \
        --interface "$w" >"$out/ds_moe_i$w.log" 2>&1
      echo "interface $w exit $?"
      grep -hE "test relative L2|rror" "$out/ds_moe_i$w.log" | tail -3
      [ "$w" = "${weights[-1]}" ] || rm -f "$out/ds_moe_i${w}_report.html"
    done
    ;;
  *)
    echo "unknown part $part (tests, accuracy, long or interface)" >&2
    exit 2
    ;;
esac
