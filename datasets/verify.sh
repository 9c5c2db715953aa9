#!/usr/bin/env bash
# Checks the four Fashion-MNIST files against datasets/SHA256SUMS (Debian's
# dataset-fashion-mnist package, or the folder named by EFFML_FASHION_MNIST_DIR, or by $1).
# Exit status: 0 when all four match, 1 otherwise, with the files that differ or are missing.
set -euo pipefail

sums=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/SHA256SUMS
dir=${1:-${EFFML_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}}

if [ ! -d "$dir" ]; then
  echo "verify: $dir: no such folder. Install Fashion-MNIST with" >&2
  echo "        apt-get install dataset-fashion-mnist, or set EFFML_FASHION_MNIST_DIR" >&2
  exit 1
fi

cd "$dir"
if sha256sum --check --strict --quiet "$sums"; then
  echo "verify: the 4 Fashion-MNIST files in $dir match datasets/SHA256SUMS"
else
  echo "verify: files in $dir differ from datasets/SHA256SUMS (see the lines above)" >&2
  exit 1
fi
