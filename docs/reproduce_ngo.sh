#!/usr/bin/env bash
# The NGO paper's experiments at our scale (docs/ngo.md): figure 3 (consensus alone, lr 0), table 1
# (linear gossip vs NGO on ring / random / complete, IID and non-IID, 2 seeds), the delay study
# (eq. 9, tau = 2 and 5) and figure 6 (local SGD H = 2, 5 vs gossip SGD vs NGO, non-IID, complete).
#   bash docs/reproduce_ngo.sh [OUT_DIR] [fig3|table1|delay|fig6|report|all] [OVERRIDE...]
# OVERRIDEs go to every training sweep after the script's own (a repeated key takes the last value), e.g.
#   bash docs/reproduce_ngo.sh sweeps/ngo fig3 train.epochs=1 hydra/launcher=submitit_slurm
# `all` ends with `report`: `cgatrain report` writes the tables and PNGs of every part found under
# OUT_DIR to OUT_DIR/report/<part>/ (REPORT_DIR=docs/results/ngo writes them there instead).
set -euo pipefail
out="${1:-sweeps/ngo}"
which="${2:-all}"
shift "$(( $# < 2 ? $# : 2 ))"
extra=("$@")  # further arguments: Hydra overrides appended to every run (the last value of a key wins)
# digits, 5 agents, the MLP (64-128-10), plain SGD (Algorithm 1 has no momentum), lr 0.1 constant,
# batch 32, 10 epochs; the synchronization index every 5 steps.
common=(data=digits model=mlp agents=5 optim.lr=0.1 optim.schedule.name=constant train.epochs=10
        checkpoint.enabled=false train.progress_bar=false train.consensus_every=5 seed=0,1)
# gamma grids giving each edge a coupling gamma * W_ij of about 0.01 to 0.33 (ring and complete:
# uniform weights 1/3 and 1/5; random: the paper's 0/1 weights, eq. 10, with u = 0.5, i.e. about 2
# neighbours per step, the ring's budget). Each is below its 1/max-degree bound.
fixed_gammas=0.05,0.2,1.0
random_gammas=0.01,0.04,0.2
random=(topology=random topology.weights=binary topology.edge_prob=0.5)

if [ "$which" = fig3 ] || [ "$which" = all ]; then
  # Consensus alone: lr 0, 10 agents with different initial linear models, 500 steps on the ring.
  cgatrain -m algorithm=ngo algorithm.p=0.5,1,2 algorithm.gamma=0.1,0.01 agents=10 model=linear same_init=false \
    optim.lr=0 optim.schedule.name=constant partition=iid train.epochs=1 train.steps_per_epoch=500 \
    train.consensus_every=1 checkpoint.enabled=false train.progress_bar=false topology=ring seed=0 \
    "hydra.sweep.dir=$out/fig3" "${extra[@]}"
fi
if [ "$which" = table1 ] || [ "$which" = all ]; then
  cgatrain -m algorithm=ngo algorithm.p=1,0.75,0.9 algorithm.gamma=$fixed_gammas topology=ring,complete \
    partition=iid,class "${common[@]}" "hydra.sweep.dir=$out/table1/fixed" "${extra[@]}"
  cgatrain -m algorithm=ngo algorithm.p=1,0.75,0.9 algorithm.gamma=$random_gammas "${random[@]}" \
    partition=iid,class "${common[@]}" "hydra.sweep.dir=$out/table1/random" "${extra[@]}"
  cgatrain -m algorithm=centralized algorithm.momentum=0 partition=iid,class "${common[@]}" \
    "hydra.sweep.dir=$out/table1/centralized" "${extra[@]}"
fi
if [ "$which" = delay ] || [ "$which" = all ]; then
  # eq. 9: both ends' states from tau steps earlier; rounds stay in flight for tau steps.
  # gamma 1.0 is refused with a delay (gamma * lambda_max(L) must stay below 2 sin(pi / (2 (2 tau + 1)))).
  cgatrain -m algorithm=ngo algorithm.delay=2,5 algorithm.p=1,0.75 algorithm.gamma=0.05,0.2 topology=ring \
    partition=iid,class "${common[@]}" "hydra.sweep.dir=$out/delay" "${extra[@]}"
fi
if [ "$which" = fig6 ] || [ "$which" = all ]; then
  # Local SGD averaging every H steps by one gossip step (H = 1 is gossip SGD), plain SGD like NGO;
  # gossip SGD and NGO on the complete non-IID cell come from table1.
  cgatrain -m algorithm=local algorithm.momentum=0 algorithm.average_every=2,5 algorithm.average_with=gossip \
    topology=complete partition=class "${common[@]}" "hydra.sweep.dir=$out/fig6" "${extra[@]}"
fi
if [ "$which" = report ] || [ "$which" = all ]; then
  reports="${REPORT_DIR:-$out/report}"
  best=(--best algorithm.gamma consensus_test_accuracy)  # the paper gives no gamma: the best one per cell
  ngo_label=(--label algorithm algorithm.p algorithm.gamma)
  # Figure 3: the synchronization index per step, one panel per gamma, one line per p.
  cgatrain report "$out"/fig3* --by algorithm.gamma --label algorithm algorithm.p \
    --step-metric consensus_distance_by_step --plot consensus_distance_by_step --out "$reports/fig3"
  # Table 1: every gamma, and the best gamma per cell and p (with its accuracy and consensus curves).
  cgatrain report "$out/table1" --by partition topology "${ngo_label[@]}" --no-plots --out "$reports/table1_every_gamma"
  cgatrain report "$out/table1" --by partition topology "${ngo_label[@]}" "${best[@]}" \
    --plot consensus_test_accuracy consensus_distance --out "$reports/table1"
  # The per-step synchronization index of the non-IID runs at their best gamma, one panel per graph.
  cgatrain report "$out/table1" --where partition=class algorithm=ngo --by topology "${ngo_label[@]}" "${best[@]}" \
    --step-metric consensus_distance_by_step --plot consensus_distance_by_step --out "$reports/sync_class"
  # Delay (eq. 9) on the ring, with table 1's tau = 0 runs of the same gammas.
  cgatrain report "$out/delay" "$out/table1" --where topology=ring algorithm=ngo algorithm.p=1,0.75 --by partition \
    "${ngo_label[@]}" algorithm.delay --no-plots --out "$reports/delay"
  # Figure 6: local SGD (H = 2, 5) against gossip SGD and NGO at their best gamma, non-IID, complete graph.
  cgatrain report "$out/fig6" "$out/table1" --where topology=complete partition=class --by partition topology \
    "${ngo_label[@]}" algorithm.average_every "${best[@]}" --step-metric consensus_distance_by_step \
    --plot consensus_test_accuracy consensus_distance_by_step --out "$reports/fig6"
fi
