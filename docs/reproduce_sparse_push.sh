#!/usr/bin/env bash
# The Sparse-Push paper's claims at our scale: 4 agents on its directed ring, IID and skew 0.8,
# Sparse-Push with no compression, top-10% and top-1% (Table 5's eta for each), and SCSP against
# Sparse-Push under skew 0.8. 2 seeds (SEEDS=0 for one). MNIST_PATH (default ../shared/data/mnist-t10k)
# is the MNIST folder.
#   bash docs/reproduce_sparse_push.sh [OUT_DIR] [digits|mnist|all] [OVERRIDE...]
# OVERRIDEs go to every training sweep after the script's own (a repeated key takes the last value), e.g.
#   bash docs/reproduce_sparse_push.sh sweeps/sparse_push digits train.epochs=1 hydra/launcher=submitit_slurm
# Each data set ends with `cgatrain report`: OUT_DIR/<data>/report/ holds report.md (tables per
# partition x method: accuracy, kB per step, compression factor), summary.csv, runs.csv and plots/.
set -euo pipefail
out="${1:-sweeps/sparse_push}"
which="${2:-all}"
shift "$(( $# < 2 ? $# : 2 ))"
extra=("$@")  # further arguments: Hydra overrides appended to every run (the last value of a key wins)
common=(checkpoint.enabled=false train.progress_bar=false "seed=${SEEDS:-0,1}")
run() {  # $1: data name, rest: extra overrides
  local data="$1"; shift
  cgatrain -m experiment=sp_none,sp_top10,sp_top1 partition=iid,skew "$@" \
    "${common[@]}" "hydra.sweep.dir=$out/$data/sparse_push" "${extra[@]}"
  cgatrain -m algorithm=scsp experiment=sp_top10,sp_top1 partition=skew "$@" \
    "${common[@]}" "hydra.sweep.dir=$out/$data/scsp" "${extra[@]}"
  cgatrain report "$out/$data" --by partition --metric parameter_divergence --out "$out/$data/report"
}
if [ "$which" = digits ] || [ "$which" = all ]; then
  run digits   # batch 32, lr 0.02 decayed 0.981 per epoch, 20 epochs
fi
if [ "$which" = mnist ] || [ "$which" = all ]; then
  run mnist data=mnist_idx "data.path=${MNIST_PATH:-../shared/data/mnist-t10k}" train.batch_size=32 train.epochs=5
fi
