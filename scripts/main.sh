#!/usr/bin/env bash
# The main job: builds (build.sh), trains LeNet-300-100 on Fashion-MNIST for 10 epochs, saves it
# as out/lenet300.safetensors, and evaluates that checkpoint on the test set.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$EFFML_ROOT/scripts/build.sh"

effml=$EFFML_BUILD/effml
if [ ! -x "$effml" ]; then
  echo "main: $effml was not built (the effml command comes from grader/cli/*.cpp)" >&2
  exit 1
fi

cd "$EFFML_ROOT"
mkdir -p out
echo "main: effml train lenet300 --epochs 10 --out out/lenet300.safetensors"
"$effml" train lenet300 --epochs 10 --out out/lenet300.safetensors
echo "main: effml eval out/lenet300.safetensors"
"$effml" eval out/lenet300.safetensors
