#!/usr/bin/env bash
# The CDSGD paper's section 5 (Jiang et al., NeurIPS 2017) at our scale, as Hydra multirun sweeps.
#   bash docs/reproduce_cdsgd.sh [OUT_DIR] [digits|scaling|mnist|all] [OVERRIDE...]
# OVERRIDEs go to every training sweep after the script's own (a repeated key takes the last value), e.g.
#   bash docs/reproduce_cdsgd.sh sweeps/cdsgd digits train.epochs=1 hydra/launcher=submitit_slurm
# Each section ends with `cgatrain report` (tables and PNGs, see docs/cdsgd.md): OUT_DIR/5.1/<data>/report/
# and OUT_DIR/5.2/digits/report/ (REPORT_DIR=docs/results/cdsgd writes them to its 5.1_digits/ and 5.2_digits/).
#
# Every run: a fixed step size (the paper's "fixed step size"; 0.1 here, see docs/cdsgd.md),
# batch 32, uniform weights on the complete graph, training accuracy scored each epoch
# (train.eval_train) for the generalization gap. SEEDS (default 0,1) and EPOCHS (default 20;
# MNIST_EPOCHS default 10) override the budget.
set -euo pipefail
out="${1:-sweeps/cdsgd}"
which="${2:-all}"
shift "$(( $# < 2 ? $# : 2 ))"
extra=("$@")  # further arguments: Hydra overrides appended to every run (the last value of a key wins)
seeds="${SEEDS:-0,1}"
epochs="${EPOCHS:-20}"
report_dir="${REPORT_DIR:-}"
# The generalization gap (train minus test accuracy of the agents' own models), the mean of the last 3
# epochs and the first epoch at which the agents' mean test accuracy reached 90%.
metrics=(--derive generalization_gap=agent_train_accuracy_mean-agent_test_accuracy_mean
         --metric agent_train_accuracy_mean generalization_gap "agent_test_accuracy_mean@last3" "agent_test_accuracy_mean@first>=0.9")
report_out() {  # sweep dir, name under REPORT_DIR
  if [ -n "$report_dir" ]; then echo "$report_dir/$2"; else echo "$1/report"; fi
}
common=(optim.lr=0.1 optim.schedule.name=constant train.batch_size=32 train.eval_train=true
        checkpoint.enabled=false train.progress_bar=false topology=complete "seed=$seeds")

section_5_1() {  # data, epochs, extra overrides...
  local data="$1" n_epochs="$2"; shift 2
  local where="$out/5.1/$data"
  # Fig. 1(a): CDSGD against centralized SGD; Fig. 1(b): CDMSGD (Nesterov, mu 0.9) against FedAvg (E = 1, C = 1).
  cgatrain -m algorithm=cdsgd,cdmsgd,fedavg agents=5 partition=iid,class "train.epochs=$n_epochs" "$@" \
    "${common[@]}" "hydra.sweep.dir=$where/decentralized" "${extra[@]}"
  # Centralized SGD as the paper runs it: one model on all the data (5x the steps per epoch of an agent).
  cgatrain -m algorithm=local algorithm.momentum=0 agents=1 partition=iid "train.epochs=$n_epochs" "$@" \
    "${common[@]}" "hydra.sweep.dir=$where/sgd_one_model" "${extra[@]}"
  # CDMSGD at the paper's own step size, 0.01 (0.1 with mu 0.9 is too large a step under the class split).
  cgatrain -m algorithm=cdmsgd agents=5 partition=iid,class "train.epochs=$n_epochs" "$@" \
    "${common[@]}" optim.lr=0.01 "hydra.sweep.dir=$where/cdmsgd_lr0.01" "${extra[@]}"
  # And as cgatrain's all-reduce baseline: the mean of 5 agents' gradients, as many steps as an agent.
  cgatrain -m algorithm=centralized algorithm.momentum=0 agents=5 partition=iid,class "train.epochs=$n_epochs" "$@" \
    "${common[@]}" "hydra.sweep.dir=$where/allreduce" "${extra[@]}"
  cgatrain report "$where" --by data partition "${metrics[@]}" --out "$(report_out "$where" "5.1_$data")"
}

if [ "$which" = digits ] || [ "$which" = all ]; then
  section_5_1 digits "$epochs" data=digits
fi
if [ "$which" = scaling ] || [ "$which" = all ]; then
  # Fig. 2(a): CDMSGD on 2, 8 and 16 agents (5 agents: section 5.1's runs), IID digits.
  cgatrain -m algorithm=cdmsgd agents=2,8,16 partition=iid data=digits "train.epochs=$epochs" \
    "${common[@]}" "hydra.sweep.dir=$out/5.2/digits" "${extra[@]}"
  # With section 5.1's 5-agent CDMSGD runs (IID) as the fourth network size, one line per size.
  cgatrain report "$out/5.2/digits" "$out/5.1/digits/decentralized" --where algorithm=cdmsgd partition=iid \
    --by data --label algorithm agents "${metrics[@]}" agent_test_accuracy_min --out "$(report_out "$out/5.2/digits" 5.2_digits)"
fi
if [ "$which" = mnist ] || [ "$which" = all ]; then
  # The MNIST split (../shared/data/mnist-t10k: 8000 train / 2000 test images).
  section_5_1 mnist_idx "${MNIST_EPOCHS:-10}" data=mnist_idx "data.path=${MNIST_PATH:-../shared/data/mnist-t10k}"
fi
