#!/usr/bin/env bash
# shellcheck disable=SC2329  # the parts are called as "part_$name"
# The whole GPU checklist of issue 12 in one command: `pytest -m gpu` and every GPU benchmark of
# benchmarks/README.md ("GPUs: what is ready, what is pending"), each part under `timeout`, each
# part's exit status in OUTDIR/summary.txt. A part that fails never stops the next one.
#
#   benchmarks/gpu_suite.sh OUTDIR [--quick] [--part tests|exchange|step|headline]... [--dry-run]
#
# Run from anywhere; it runs from the repository root with PYTHONPATH=<repo> (no pip install).
# Parts and their expected time on one H200 with 16 cores (full / --quick):
#   tests     gpu_smoke.py (pinned copies, Gloo on 127.0.0.1, NCCL start: seconds), then
#             pytest -m gpu (tests/test_gpu.py, one test in test_vision_data.py)     4-6 min / same
#   exchange  ring of 5 agents sharing GPU 0, staged Gloo; NCCL ring if >= 3 GPUs     1-2 min / < 1 min
#   step      step time, VGG11 and ResNet-20, 5 agents on GPU 0 (+ NCCL if >= 3 GPUs)  2-4 min / 1-2 min
#   headline  40 agents, VGG11, CGA vs DPMSGD, without and with MPS                    4-7 min / 3-5 min
# Each part is capped at 9 minutes (timeouts below), so `--part X` fits a 10-minute call; on one GPU
# `--part exchange --part step` together are capped at 7.5 minutes, the headline part at 7.5.
# Output (flat, few files): env.txt, summary.txt, one log per part, one JSON per benchmark run.
# Without CUDA every part says it is skipped and the script exits 0; it exits 1 if any part failed.
# --dry-run prints the commands instead of running them; GPU_SUITE_GPUS=N pretends N GPUs (tests).

set -u
usage() { sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

OUT="" QUICK=0 DRY=0 PARTS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --dry-run) DRY=1 ;;
    --part) shift; [ $# -gt 0 ] || usage; PARTS+=("$1") ;;
    --part=*) PARTS+=("${1#--part=}") ;;
    -h|--help) usage 0 ;;
    -*) echo "gpu_suite: unknown option $1" >&2; usage ;;
    *) [ -z "$OUT" ] || usage; OUT="$1" ;;
  esac
  shift
done
[ -n "$OUT" ] || usage
[ ${#PARTS[@]} -gt 0 ] || PARTS=(tests exchange step headline)
for part in "${PARTS[@]}"; do
  case "$part" in tests|exchange|step|headline) ;; *) echo "gpu_suite: unknown part '$part' (tests, exchange, step, headline)" >&2; exit 2 ;; esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
SUMMARY="$OUT/summary.txt"
[ -n "$PY" ] || { echo "gpu_suite: no python or python3 on PATH (or set PYTHON)" >&2; exit 2; }
command -v timeout >/dev/null || { echo "gpu_suite: needs coreutils timeout" >&2; exit 2; }
FAILED=0

note() { echo "$*" | tee -a "$SUMMARY"; }

# run_part NAME SECONDS LOG COMMAND...: run under timeout (the whole process group, so spawned agents
# die with it), append the output to LOG and "NAME rc=N seconds=S" to the summary; returns rc.
run_part() {
  local name="$1" limit="$2" log="$3"; shift 3
  if [ "$DRY" = 1 ]; then note "$name would run (timeout ${limit}s): $*"; return 0; fi
  echo "== $name: $* (timeout ${limit}s)" | tee -a "$log"
  local started=$SECONDS rc
  timeout -k 20 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  local status="rc=$rc"
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && status="rc=$rc (timed out after ${limit}s)"
  note "$name $status seconds=$((SECONDS - started))"
  [ "$rc" = 0 ] || FAILED=1
  tail -n 25 "$log"
  return "$rc"
}

write_env() {
  {
    echo "# gpu_suite environment, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "repo: $ROOT (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
    echo "cpu cores: $(nproc 2>/dev/null || echo unknown); memory: $(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "--- nvidia-smi"
    if command -v nvidia-smi >/dev/null; then timeout 60 nvidia-smi 2>&1; timeout 30 nvidia-smi -L 2>&1; else echo "nvidia-smi not found"; fi
    echo "nvidia-cuda-mps-control: $(command -v nvidia-cuda-mps-control || echo not found)"
    echo "--- python"
    timeout 120 "$PY" - <<'EOF' 2>&1
import importlib, platform, sys
print("python", sys.version.split()[0], platform.platform())
try:
    import torch
    import torch.distributed as dist
except Exception as error:  # the suite still records why nothing ran
    print("torch import failed:", error)
    raise SystemExit(0)
print("torch", torch.__version__, "| CUDA build", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
print("cuda available", torch.cuda.is_available(), "| GPUs", torch.cuda.device_count() if torch.cuda.is_available() else 0)
print("nccl", ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() and dist.is_nccl_available() else "unavailable")
for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name} capability {p.major}.{p.minor} {p.total_memory / 2**30:.1f} GiB {p.multi_processor_count} SMs")
for name in ("torchvision", "numpy", "hydra", "omegaconf", "quadprog", "yaml", "sklearn", "scipy", "tqdm", "pytest", "pytest_timeout"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', 'ok')}")
    except Exception as error:
        print(f"{name} MISSING ({type(error).__name__}: {error})")
EOF
  } >"$OUT/env.txt"
}

gpu_count() {
  if [ -n "${GPU_SUITE_GPUS:-}" ]; then echo "$GPU_SUITE_GPUS"; return; fi
  timeout 120 "$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0
}

part_tests() {
  # -rsfE: why each test was skipped, plus failures and errors; collection errors in modules that
  # need packages this machine lacks must not stop the gpu tests of the others.
  run_part smoke 60 "$OUT/tests.log" "$PY" benchmarks/gpu_smoke.py
  run_part tests 470 "$OUT/tests.log" "$PY" -m pytest -m gpu -q -rsfE -p no:cacheprovider --continue-on-collection-errors tests
}

part_exchange() {
  local log="$OUT/exchange.log" quick=()
  [ "$QUICK" = 1 ] && quick=(--iters 200 --min-iters 20 --blocks 4 --warmup 5)
  run_part exchange_staged 150 "$log" "$PY" benchmarks/exchange_throughput.py --agents 5 --device cuda --gpus 1 ${quick[@]+"${quick[@]}"} \
    --json "$OUT/exchange_staged.json"
  if [ "$GPUS" -ge 3 ]; then
    local agents=$((GPUS < 8 ? GPUS : 8))
    run_part exchange_nccl 150 "$log" "$PY" benchmarks/exchange_throughput.py --agents "$agents" --device cuda --backend nccl ${quick[@]+"${quick[@]}"} \
      --json "$OUT/exchange_nccl.json"
  else
    note "exchange_nccl skipped: a NCCL ring needs >= 3 GPUs (one per agent), $GPUS visible"
  fi
}

part_step() {
  local log="$OUT/step.log" timing=(--steps 40 --blocks 4 --warmup 5) model
  [ "$QUICK" = 1 ] && timing=(--steps 16 --blocks 2 --warmup 3)
  local common=(--data cifar10-shaped --batch-size 128 --algorithms dpmsgd cga cga:cross_grad_mode=loop --baseline dpmsgd
                --epoch-samples 50000 --device cuda "${timing[@]}")
  for model in vgg11 resnet20; do
    run_part "step_${model}_5_on_1gpu" 150 "$log" "$PY" benchmarks/step_time.py --agents 5 --gpus 1 --model "$model" "${common[@]}" \
      --json "$OUT/step_time_${model}_5_on_1gpu.json"
  done
  if [ "$GPUS" -ge 3 ]; then
    local agents=$((GPUS < 5 ? GPUS : 5))
    for model in vgg11 resnet20; do
      run_part "step_${model}_nccl" 60 "$log" "$PY" benchmarks/step_time.py --agents "$agents" --backend nccl --model "$model" "${common[@]}" \
        --json "$OUT/step_time_${model}_${agents}_nccl.json"
    done
  else
    note "step_nccl skipped: one agent per GPU over NCCL needs >= 3 GPUs for a ring, $GPUS visible"
  fi
}

part_headline() {
  local log="$OUT/headline.log" timing=(--steps 10 --warmup 2)  # 10 steps = one epoch of the paper's setting
  [ "$QUICK" = 1 ] && timing=(--steps 4 --warmup 1)
  run_part headline_no_mps 200 "$log" "$PY" benchmarks/cga_headline.py "${timing[@]}" --json "$OUT/cga_headline_no_mps.json"
  if ! command -v nvidia-cuda-mps-control >/dev/null && [ "$DRY" = 0 ]; then
    note "headline_mps skipped: nvidia-cuda-mps-control not found"; return
  fi
  # A private pipe directory: our daemon only, found by our agents only (docs/gpu.md, CUDA MPS).
  local mps="${TMPDIR:-/tmp}/cgatrain-mps.$$"
  if [ "$DRY" = 0 ]; then
    mkdir -p "$mps/pipe" "$mps/log"
    export CUDA_MPS_PIPE_DIRECTORY="$mps/pipe" CUDA_MPS_LOG_DIRECTORY="$mps/log"
    if ! nvidia-cuda-mps-control -d >>"$log" 2>&1; then
      note "headline_mps skipped: the MPS daemon did not start (see headline.log)"; FAILED=1
      unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY; return
    fi
    MPS_STARTED=1
    sleep 2
  fi
  # A client that cannot reach the daemon hangs rather than fails: try one before 40 agents do.
  if ! run_part mps_client 40 "$log" "$PY" -c "import torch; torch.ones(1, device='cuda').add_(1); torch.cuda.synchronize(); print('MPS client ok')"; then
    note "headline_mps skipped: a CUDA process under MPS did not start (see headline.log)"
    stop_mps; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY; return
  fi
  run_part headline_mps 200 "$log" "$PY" benchmarks/cga_headline.py "${timing[@]}" --json "$OUT/cga_headline_mps.json"
  stop_mps
  if [ "$DRY" = 0 ]; then { echo "--- MPS control log (tail)"; tail -n 20 "$mps/log/control.log" 2>/dev/null; } >>"$log"; fi
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
}

MPS_STARTED=0
stop_mps() {
  if [ "$MPS_STARTED" = 1 ]; then echo quit | timeout 30 nvidia-cuda-mps-control >/dev/null 2>&1; MPS_STARTED=0; fi
}
trap stop_mps EXIT

[ "$DRY" = 1 ] || write_env
GPUS="$(gpu_count)"
note "gpu_suite $(date -u +%H:%M:%S) parts: ${PARTS[*]}; quick=$QUICK; GPUs visible: $GPUS; out: $OUT"
for part in "${PARTS[@]}"; do
  if [ "$GPUS" -lt 1 ]; then
    note "$part skipped: no CUDA GPU visible (torch.cuda.is_available() is False)"
    continue
  fi
  "part_$part"
done
note "gpu_suite done $(date -u +%H:%M:%S): $([ "$FAILED" = 0 ] && echo 'no part failed' || echo 'some part FAILED, see the logs')"
echo "--- $SUMMARY"; cat "$SUMMARY"
exit "$FAILED"
