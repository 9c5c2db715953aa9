#!/usr/bin/env bash
# Gradescope autograder set-up for @LAB@ (written by `effml ci-template`; see grader/README.md).
#
# Gradescope runs this once, as root, when it builds the autograder image, with the uploaded zip
# unpacked in /autograder/source. The zip holds this file, run_autograder, and the instructor
# repository (reference/ and hidden tests included) either at the zip's root or in a folder
# `effml/`. It installs the Debian packages (scripts/setup.sh), then builds the effml command
# without -march=native, since the machine that grades need not be the one that built the image.
#
# Environment (for trying it outside Gradescope): AUTOGRADER_ROOT (default /autograder),
# EFFML_REPO (default: found under $AUTOGRADER_ROOT/source), EFFML_BUILD_DIR (default
# $EFFML_REPO/build).
set -euo pipefail

root=${AUTOGRADER_ROOT:-/autograder}
repo=${EFFML_REPO:-}
if [ -z "$repo" ]; then
  if [ -f "$root/source/CMakeLists.txt" ]; then repo=$root/source; else repo=$root/source/effml; fi
fi
[ -f "$repo/CMakeLists.txt" ] || { echo "setup.sh: no repository at $repo" >&2; exit 1; }
build=${EFFML_BUILD_DIR:-$repo/build}

bash "$repo/scripts/setup.sh"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DEFFML_NATIVE=OFF
make -C "$build" -j"$(nproc)" effml
echo "setup.sh: built $build/effml"
