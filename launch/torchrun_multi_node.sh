#!/usr/bin/env bash
# One agent per process across several machines; run the same line on every node.
#   NNODES=2 NPROC=4 RDZV_HOST=node01 RUN_ID=exp42 launch/torchrun_multi_node.sh algorithm=dpmsgd
# RUN_ID names the shared run directory outputs/torchrun/<RUN_ID>/ (it must be on a shared disk).
set -euo pipefail
exec torchrun \
  --nnodes "${NNODES:?set NNODES}" \
  --nproc-per-node "${NPROC:-1}" \
  --rdzv-backend c10d \
  --rdzv-endpoint "${RDZV_HOST:?set RDZV_HOST}:${RDZV_PORT:-29400}" \
  --rdzv-id "${RUN_ID:?set RUN_ID}" \
  -m cgatrain "$@"
