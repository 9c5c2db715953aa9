#!/usr/bin/env bash
# Installs what is missing (setup.sh), then configures and builds everything into build/
# (Release). Incremental: a second run rebuilds only what changed.
# Extra arguments go to cmake's configure step, e.g. -DEFFML_NATIVE=OFF.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$EFFML_ROOT/scripts/setup.sh"

log=$(new_log build)
jobs=$(nproc 2>/dev/null || echo 2)
run_step "$log" "build: configure ($EFFML_BUILD_DIR)" \
  cmake -S "$EFFML_ROOT" -B "$EFFML_BUILD" -DCMAKE_BUILD_TYPE=Release "$@"
run_step "$log" "build: compile with $jobs jobs (log: $log)" \
  make --no-print-directory -C "$EFFML_BUILD" -j"$jobs"
