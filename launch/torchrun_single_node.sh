#!/usr/bin/env bash
# One agent per process on this machine under torchrun (env:// rendezvous).
#   NPROC=4 launch/torchrun_single_node.sh algorithm=dpsgd topology=ring
# All ranks write one run directory, outputs/torchrun/<run id>/ (or pass hydra.run.dir=...).
set -euo pipefail
exec torchrun --standalone --nproc-per-node "${NPROC:-4}" -m cgatrain "$@"
