#!/usr/bin/env bash
# The language-model GPU pass behind bench/RESULTS.md: each part fits one device call (under 9
# minutes, each command under `timeout`), writes its logs and JSON lines under $OUT (or
# out/gpu_lm_pass), and runs PyTorch's side and ours one after the other in the same call, alone on
# the GPU. Several parts may be named in one call (`bench/gpu_lm_pass.sh attention step`).
#
#   bench/gpu_lm_pass.sh tests      # the Hugging Face fixture (transformers, PEFT, tokenizers) written
#                                   # and compared both ways, torch_seco.py's own check of its SeCO,
#                                   # then `deno task test:gpu` (about 6–8 min)
#   bench/gpu_lm_pass.sh attention  # fused attention vs SDPA (flash), bfloat16, with the error
#                                   # against a float32 reference (about 2 min)
#   bench/gpu_lm_pass.sh step       # Llama-3.2-1B training step vs PyTorch eager (about 2–3 min)
#   bench/gpu_lm_pass.sh scale      # Llama-3-8B + LoRA: full, checkpoint, SeCO, SpaCO at 16K–64K and
#                                   # the longest that trains, PyTorch (transformers) then ours (≤ 8.5 min)
#   bench/gpu_lm_pass.sh ssm        # bench/ssm_adjoint.ts (SSM_ARGS: its flags) where the tree has it
#
# TINY=1 runs every part at a tiny size (a check of the pass on any machine: with
# PATCHWORK_BACKEND=cpu and PYTHON naming a python3 with torch, no GPU is needed).
# Knobs: SCALE_METHODS, SCALE_LENGTHS, TORCH_BUDGET / OURS_BUDGET (seconds for all methods of
# each side), SECO_MODEL (hf or plain: the PyTorch model; hf falls back to plain when it fails).
# Files back from a device call are few (8) and shallow, so the fixture comes back as one archive.
set -uo pipefail
out=${OUT:-out/gpu_lm_pass}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export PATCHWORK_BACKEND=${PATCHWORK_BACKEND:-cuda} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
if [ "${TINY:-0}" = 1 ]; then
  # shellcheck disable=SC2054 # (commas inside one argument)
  attn_torch=(--heads 4 --kv-heads 2 --head-dim 16 --cases 64,16x64,32x64 --reps 2 --warmup 1)
  attn_ours=(--shape tiny --reps 2 --warmup 1)
  step_args=(--shape tiny --seq 64 --steps 2 --warmup 1)
  scale_args=(--shape tiny --max-len 1024 --warmup-len 128)
  SCALE_LENGTHS=${SCALE_LENGTHS:-256,512}
  SCALE_METHODS=${SCALE_METHODS:-full,checkpoint,seco:64,spaco:32:4}
else
  attn_torch=() attn_ours=()
  step_args=(--shape llama-3.2-1b --seq 2048)
  scale_args=(--shape llama-3-8b)
fi
work=$(mktemp -d)
[ $# -gt 0 ] || { echo "usage: bench/gpu_lm_pass.sh tests|attention|step|scale|ssm …" >&2; exit 2; }
device=$({
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ)"
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} 2>&1)
echo "$device"

# run SECONDS LOG command…: the command under a time limit, its output shown (QUIET=1: only kept)
# and appended to $out/LOG.
# Every limit is cut to what is left of DEADLINE seconds (default 560) since the pass began, so any
# parts named together end inside one device call.
run() {
  local limit=$1 log=$2 rc left=$((${DEADLINE:-560} - SECONDS))
  shift 2
  if [ "$left" -lt 15 ]; then
    echo "[skipped: $* (the pass's deadline is near)]" | tee -a "$out/$log"
    return 124
  fi
  [ "$limit" -le "$left" ] || limit=$left
  if [ "${QUIET:-0}" = 1 ]; then
    timeout "$limit" "$@" >>"$out/$log" 2>&1
    rc=$?
  else
    echo "\$ $*" >>"$out/$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$log"
    rc=${PIPESTATUS[0]}
  fi
  echo "[exit $rc$([ "$rc" = 124 ] && echo ", stopped at ${limit} s")]" | tee -a "$out/$log"
  return "$rc"
}

for part in "$@"; do
  echo "== $part"
  echo "$device" >>"$out/$part.log"
  case "$part" in
    tests)
      run 120 tests.log "$py" tests/fixtures/make_hf_fixture.py --out "$work/hf"
      tar -C "$work" -czf "$out/hf_fixture.tar.gz" hf 2>/dev/null || echo "no fixture written"
      PATCHWORK_HF_FIXTURE="$work/hf" PATCHWORK_HF_EXPORT="$work/ours" \
        run 120 tests.log deno test -A tests/lm_hf_fixture_test.ts
      run 60 tests.log "$py" tests/fixtures/make_hf_fixture.py --check-ours "$work/ours" --fixture "$work/hf"
      (cd bench && run 90 tests.log "$py" torch_seco.py --check --model hf)
      QUIET=1 run 400 test_gpu.log deno task test:gpu
      grep -E "^(ok|FAILED) \|" "$out/test_gpu.log" | tail -1
      grep -E "FAILED|^error" "$out/test_gpu.log" | head -20
      ;;
    attention)
      (cd bench && run 150 attention.log "$py" torch_attention.py "${attn_torch[@]}" --json "$out/attention.jsonl" \
        --dump "$work")
      run 300 attention.log deno run -A bench/lm_attention.ts "${attn_ours[@]}" --torch "$out/attention.jsonl" \
        --ref "$work/attention_case.safetensors" --json "$out/attention.jsonl"
      ;;
    step)
      (cd bench && run 150 step.log "$py" torch_train_step.py "${step_args[@]}" --json "$out/step.jsonl")
      run 240 step.log deno run -A bench/lm_step.ts "${step_args[@]}" --torch "$out/step.jsonl" --json "$out/step.jsonl"
      ;;
    scale)
      methods=${SCALE_METHODS:-full,checkpoint,seco:128,seco:256,spaco:256:8}
      lengths=${SCALE_LENGTHS:-16384,32768,65536}
      tb=${TORCH_BUDGET:-150}
      ob=${OURS_BUDGET:-240}
      model=${SECO_MODEL:-hf}
      (cd bench && run $((tb + 40)) scale.log "$py" torch_seco.py --model "$model" "${scale_args[@]}" \
        --lengths "$lengths" --methods "$methods" --longest --budget "$tb" --json "$out/scale.jsonl")
      if [ "$model" = hf ] && ! grep -q '"impl": "torch"' "$out/scale.jsonl" 2>/dev/null; then
        echo "transformers' model gave no row: the plain PyTorch Llama instead, for half the budget"
        (cd bench && run $((tb / 2 + 30)) scale.log "$py" torch_seco.py --model plain \
          "${scale_args[@]}" --lengths "$lengths" --methods "$methods" --longest --budget $((tb / 2)) \
          --json "$out/scale.jsonl")
      fi
      run $((ob + 60)) scale.log deno run -A bench/lm_chunked_scale.ts "${scale_args[@]}" --lengths "$lengths" \
        --methods "$methods" --longest --budget "$ob" --torch "$out/scale.jsonl" --json "$out/scale.jsonl"
      ;;
    ssm)
      # The state-space model's gradients (backprop, adjoint sharding) against T: bench/ssm_adjoint.ts
      # with the flags in SSM_ARGS (its own defaults without them).
      read -ra ssm_args <<<"${SSM_ARGS:-}"
      if [ -f bench/ssm_adjoint.ts ]; then
        run 540 ssm.log deno run -A bench/ssm_adjoint.ts "${ssm_args[@]}"
      else
        echo "bench/ssm_adjoint.ts is not in this tree" | tee -a "$out/ssm.log"
      fi
      ;;
    *)
      echo "unknown part $part (tests, attention, step, scale or ssm)" >&2
      exit 2
      ;;
  esac
done
rm -rf "$work"
