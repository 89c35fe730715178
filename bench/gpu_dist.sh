#!/usr/bin/env bash
# The multi-GPU pass (nvidia-h200-x2 or larger: one process per GPU, NCCL) behind bench/RESULTS.md's
# distributed rows, in one device call; logs and records under $OUT (or out/gpu_dist), at most 8 files.
#
#   bench/gpu_dist.sh            # every part below, in this order
#   bench/gpu_dist.sh tests      # tests/dist_nccl_test.ts: collectives, data-parallel and sharded-expert
#                                # equality against one GPU, a killed and a hung rank
#   bench/gpu_dist.sh bandwidth  # all-reduce bus bandwidth, 8 B to 1 GiB: patchwork (NCCL through FFI),
#                                # PyTorch's all-reduce in the same call, nccl-tests' all_reduce_perf if present
#   bench/gpu_dist.sh scaling    # throughput on 1 and on all GPUs (the same batch per GPU): the Navier–Stokes
#                                # PI-HC-MoE step at the paper's sizes and a chunk-wise (SeCO) Llama-3.2-1B step
#   bench/gpu_dist.sh adjoint    # adjoint sharding of the SSM language model on 1 and on all GPUs (the same rows
#                                # on every GPU, K/Υ layers each): the paper's form and the exact form
#
# NVLink multicast stays off (NCCL_NVLS_ENABLE=0 and friends): it can take the host's shared GPUs out of
# service. NCCL is the library PyTorch ships (the nvidia-nccl wheel) unless PATCHWORK_NCCL names one.
# Sizes: NS_BATCH (per GPU, default 2), LM_ROWS (per GPU, default 1), LM_SEQ (4096), LM_CHUNK (512);
# SSM_SEQ (adjoint: tokens per row, default 2048), SSM_DEPTH (layers, default 8: a multiple of the GPUs).
set -uo pipefail
part=${1:-all}
out=${OUT:-out/gpu_dist}
mkdir -p "$out"
[ -f .gpu/env.sh ] && source .gpu/env.sh
export PATCHWORK_BACKEND=cuda NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
gpus=${NPROC:-$(nvidia-smi -L | wc -l)}
if [ -z "${PATCHWORK_NCCL:-}" ]; then
  PATCHWORK_NCCL=$(python3 -c '
import glob, site
found = [f for d in site.getsitepackages() for f in glob.glob(d + "/nvidia/**/libnccl.so*", recursive=True)]
print(found[0] if found else "")')
  export PATCHWORK_NCCL
fi
{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
  nvidia-smi topo -m
  echo "PATCHWORK_NCCL=$PATCHWORK_NCCL"
  python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version(), "gpus", torch.cuda.device_count())'
  deno --version | head -1
  git log --oneline -1
} 2>&1 | tee "$out/device.txt"

tests() {
  deno test -A tests/dist_nccl_test.ts >"$out/test_nccl.log" 2>&1
  echo "dist_nccl_test exit $?"
  grep -E "^(ok|FAILED) \||ignored|FAILED|NCCL " "$out/test_nccl.log" | tail -12
}

bandwidth() {
  rm -f "$out/allreduce.jsonl"
  {
    deno task launch --nproc "$gpus" --no-prefix bench/dist_allreduce.ts --max 1073741824 --json "$out/allreduce.jsonl"
    echo "patchwork exit $?"
    torchrun --nproc_per_node "$gpus" bench/dist_allreduce_torch.py --max 1073741824 --json "$out/allreduce.jsonl"
    echo "pytorch exit $?"
    if command -v all_reduce_perf >/dev/null; then
      all_reduce_perf -b 8 -e 1G -f 2 -g "$gpus" -n 20 -w 5
    else
      echo "nccl-tests (all_reduce_perf) is not on this machine: PyTorch's all-reduce is the reference"
    fi
  } 2>&1 | tee "$out/allreduce.log" | grep -E "^\| (8|1048576|16777216|268435456|1073741824) \||exit|nccl-tests"
}

scaling() {
  rm -f "$out/scaling.jsonl"
  local ns="--task ns --nx 64 --nt 64 --experts 1x2x2 --points 20000 --basis 64 --width 64 --modes 8 --layers 8"
  ns="$ns --fc 256 --recompute --reps 3 --warmup 1 --json $out/scaling.jsonl"
  local lm="--task lm --preset llama-3.2-1b --dtype bfloat16 --seq ${LM_SEQ:-4096} --chunk ${LM_CHUNK:-512}"
  lm="$lm --method seco --reps 3 --warmup 1 --json $out/scaling.jsonl"
  {
    for n in 1 "$gpus"; do
      deno task launch --nproc "$n" bench/dist_scaling.ts $ns --batch $((${NS_BATCH:-2} * n))
      echo "ns on $n exit $?"
    done
    deno task launch --nproc "$gpus" bench/dist_scaling.ts $ns --batch $((${NS_BATCH:-2} * gpus)) --parallel experts
    echo "ns experts on $gpus exit $?"
    for n in 1 "$gpus"; do
      deno task launch --nproc "$n" bench/dist_scaling.ts $lm --rows $((${LM_ROWS:-1} * n))
      echo "lm on $n exit $?"
    done
  } >"$out/scaling.log" 2>&1
  grep -E "s/step|exit" "$out/scaling.log"
}

adjoint() {
  local ssm="--task ssm --preset small --depth ${SSM_DEPTH:-8} --seq ${SSM_SEQ:-2048} --rows 1 --pieces 262144"
  ssm="$ssm --reps 3 --warmup 1 --json $out/scaling.jsonl"
  # This part's records replace those of an earlier run of it.
  [ -f "$out/scaling.jsonl" ] && { grep -v '"task":"ssm ' "$out/scaling.jsonl" >"$out/scaling.tmp"; mv "$out/scaling.tmp" "$out/scaling.jsonl"; }
  {
    for grad in adjoint adjoint-exact; do
      for n in 1 "$gpus"; do
        deno task launch --nproc "$n" bench/dist_scaling.ts $ssm --grad $grad
        echo "ssm $grad on $n exit $?"
      done
    done
  } >"$out/adjoint.log" 2>&1
  grep -E "s/step|exit" "$out/adjoint.log"
}

case "$part" in
  tests) tests ;;
  bandwidth) bandwidth ;;
  scaling) scaling ;;
  adjoint) adjoint ;;
  all)
    tests
    bandwidth
    scaling
    adjoint
    ;;
  *)
    echo "unknown part $part (tests, bandwidth, scaling, adjoint or all)" >&2
    exit 2
    ;;
esac
deno run -A bench/dist_summary.ts "$out/allreduce.jsonl" "$out/scaling.jsonl" | tee "$out/summary.md"
