#!/usr/bin/env bash
# Builds (build.sh), runs every test with ctest, then builds the docs with Doxygen warnings as
# errors. Exits non-zero when the build, any test or the docs fail. Extra arguments go to ctest,
# e.g. `bash scripts/test.sh -R core/`, `bash scripts/test.sh -L grader` or `-LE slow` (quick).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$EFFML_ROOT/scripts/build.sh"

# Tests: ctest's own output (one line per test, details of failures) is the report. Finding
# no test at all (an empty build, or a -R that matches nothing) is an error.
ctest_log=$(new_log ctest)
echo "test: ctest -j2 $*"
ctest_rc=0
ctest --test-dir "$EFFML_BUILD" --output-on-failure --no-tests=error -j2 "$@" 2>&1 |
  tee "$ctest_log" || ctest_rc=$?

# Docs: every Doxygen warning fails the target; the warnings are shown on failure.
docs_log=$(new_log docs)
docs_rc=0
run_step "$docs_log" "test: docs target, warnings are errors (log: $docs_log)" \
  make --no-print-directory -C "$EFFML_BUILD" docs || docs_rc=$?
if [ "$docs_rc" -ne 0 ]; then
  echo "test: docs: $(grep -E ': (warning|error): ' "$docs_log" | sort -u | wc -l) distinct" \
    "Doxygen warnings (all in $docs_log)"
fi

# One closing line counting the tests ctest ran plus the docs check.
summary=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$ctest_log" |
  tail -n 1 || true)
if [ -n "$summary" ]; then
  total=$(echo "$summary" | sed -E 's/.* out of ([0-9]+).*/\1/')
  failed=$(echo "$summary" | sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/')
else
  # ctest ran nothing or did not finish: count that as one failure unless it exited 0.
  total=0
  failed=0
  if [ "$ctest_rc" -ne 0 ]; then total=1; failed=1; fi
fi
passed=$((total - failed))
if [ "$docs_rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "summary: $passed passed, $failed failed"
if [ "$ctest_rc" -ne 0 ] || [ "$docs_rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
  exit 1
fi
