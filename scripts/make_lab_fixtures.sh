#!/usr/bin/env bash
# Regenerates a lab's public fixtures from its reference solution.
#
#   bash scripts/make_lab_fixtures.sh LAB [BUILD_DIR]
#
# LAB is a lab folder name (lab0_tensor) or short name (lab0). BUILD_DIR (default
# $EFFML_BUILD_DIR, else build) is a configured and built tree holding the effml command.
#
# This is `effml fixtures LAB` (grader/src/fixtures.cpp), the one way fixtures are made: for every
# visible exact task of labs/<lab>/manifest.json and the public seeds 1, 2, 3 the reference runner
# writes the inputs (`gen`) and the expected outputs (`run`), stored together as
# labs/<lab>/fixtures/<task>.safetensors, <task>.0.safetensors and <task>.1.safetensors (tensors
# "input.<x>" and "expected.<y>", metadata lab, task, seed, generator; no date, so the same
# reference gives the same bytes). `effml release` regenerates them the same way in the release.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: bash scripts/make_lab_fixtures.sh LAB [BUILD_DIR]" >&2
  exit 2
fi
build=${2:-${EFFML_BUILD_DIR:-build}}
case $build in /*) ;; *) build=$root/$build ;; esac
if [ ! -x "$build/effml" ]; then
  echo "make_lab_fixtures: $build/effml is missing: build it first (bash scripts/build.sh)" >&2
  exit 1
fi
exec "$build/effml" fixtures "$1" --seed 1 --cases 3
