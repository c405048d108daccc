#!/usr/bin/env bash
# The main job on this machine: cgatrain spawns one process per agent on 127.0.0.1 (Gloo).
#   launch/local.sh agents=8 topology=exponential
set -euo pipefail
exec cgatrain "$@"
