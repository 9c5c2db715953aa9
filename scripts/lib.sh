# Shared by the scripts in this folder (sourced, not run).
#
# Output contract: one line per step on the terminal; everything a step prints goes to a log file
# under <build>/logs/; when a step fails, its log's first error lines and its tail are shown.
#
# EFFML_BUILD_DIR (default "build", relative to the repository root) moves the build folder.

EFFML_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EFFML_BUILD_DIR=${EFFML_BUILD_DIR:-build}
case $EFFML_BUILD_DIR in
  /*) EFFML_BUILD=$EFFML_BUILD_DIR ;;
  *) EFFML_BUILD=$EFFML_ROOT/$EFFML_BUILD_DIR ;;
esac
EFFML_LOGS=$EFFML_BUILD/logs

# Starts a fresh log file for this script and prints its path.
new_log() {
  mkdir -p "$EFFML_LOGS"
  local log=$EFFML_LOGS/$1.log
  : >"$log"
  echo "$log"
}

# Prints what went wrong in a failed step: the log's first error (a compiler's first error is the
# one to read) when it lies before the tail, then the last 40 lines of the log.
show_failure() {
  local log=$1
  local lines first
  lines=$(wc -l <"$log")
  first=$(grep -n -m 1 -E 'error:|Error( [0-9]+)?:|CMake Error|^E: ' "$log" | cut -d: -f1 || true)
  if [ -n "$first" ] && [ "$first" -le $((lines - 40)) ]; then
    echo "---- first error in $log (line $first) ----"
    sed -n "${first},$((first + 14))p" "$log"
  fi
  echo "---- last 40 lines of $log ----"
  tail -n 40 "$log"
  echo "---- full log: $log ----"
}

# run_step LOG "what it does" command [args...]
# Runs the command with its output appended to LOG and prints one line: "what it does ... ok (12s)".
# On a terminal, a make-style "[ 42%]" progress is shown while it runs. Returns the command's
# exit status; on failure the log's errors and tail are printed first.
run_step() {
  local log=$1 what=$2
  shift 2
  local start=$SECONDS rc=0
  echo "==> $what: $*" >>"$log"
  if [ -t 1 ]; then
    "$@" >>"$log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      local pct
      pct=$(tail -c 4000 "$log" | grep -o '\[ *[0-9]*%\]' | tail -n 1 || true)
      printf '\r%s ... %s %ds ' "$what" "$pct" $((SECONDS - start))
      sleep 1
    done
    wait "$pid" || rc=$?
    printf '\r\033[K'
  else
    "$@" >>"$log" 2>&1 || rc=$?
  fi
  if [ "$rc" -eq 0 ]; then
    printf '%s ... ok (%ds)\n' "$what" $((SECONDS - start))
  else
    printf '%s ... FAILED (exit %d, %ds)\n' "$what" "$rc" $((SECONDS - start))
    show_failure "$log"
  fi
  return "$rc"
}
