#!/usr/bin/env bash
# Executes every notebook of this folder headless, in name order, and fails if any cell fails.
#
#   bash notebooks/run_all.sh
#
# Each notebook runs with Debian's jupyter-nbconvert and the python3 kernel of Debian's
# python3-ipykernel, which runs /usr/bin/python3 (the interpreter that has python3-matplotlib;
# a `python3` from pyenv or a virtual environment earlier on PATH may lack it). The executed
# copies go to <build>/notebooks/ (EFFML_BUILD_DIR, default build/), next to the figures and the
# files the notebooks write; the notebooks in this folder stay without outputs.
# The notebooks find the effml command through EFFML (default <build>/effml).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build=${EFFML_BUILD_DIR:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
out=$build/notebooks
export EFFML_BUILD_DIR=$build
export EFFML=${EFFML:-$build/effml}

nbconvert=/usr/bin/jupyter-nbconvert
if [ ! -x "$nbconvert" ]; then
  echo "run_all: $nbconvert not found; install Debian's jupyter-nbconvert, python3-ipykernel" \
       "and python3-matplotlib (bash scripts/setup.sh)" >&2
  exit 1
fi
if ! /usr/bin/python3 -c 'import ipykernel, matplotlib' 2>/dev/null; then
  echo "run_all: /usr/bin/python3 lacks ipykernel or matplotlib; install python3-ipykernel and" \
       "python3-matplotlib" >&2
  exit 1
fi
if [ ! -x "$EFFML" ]; then
  echo "run_all: $EFFML not found; build first (bash scripts/build.sh) or set EFFML" >&2
  exit 1
fi

# A kernel named python3 that runs /usr/bin/python3, first on Jupyter's search path, so a user's
# own python3 kernel (~/.local/share/jupyter/kernels) cannot take its place.
mkdir -p "$out/jupyter/kernels/python3"
cat >"$out/jupyter/kernels/python3/kernel.json" <<'JSON'
{"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
 "display_name": "Python 3 (Debian)", "language": "python"}
JSON
export JUPYTER_PATH=$out/jupyter
export MPLBACKEND=Agg
export PYDEVD_DISABLE_FILE_VALIDATION=1  # silences the debugger's frozen-modules notice

shopt -s nullglob
notebooks=("$here"/*.ipynb)
if [ ${#notebooks[@]} -eq 0 ]; then
  echo "run_all: no notebooks in $here" >&2
  exit 1
fi
failed=()
for nb in "${notebooks[@]}"; do
  name=$(basename "$nb")
  start=$SECONDS
  log=$out/${name%.ipynb}.log
  if "$nbconvert" --to notebook --execute --ExecutePreprocessor.timeout=900 \
       --ExecutePreprocessor.kernel_name=python3 --output-dir "$out" "$nb" >"$log" 2>&1; then
    echo "run_all: $name ... ok ($((SECONDS - start))s, executed copy in $out/$name)"
  else
    echo "run_all: $name ... FAILED ($((SECONDS - start))s); the end of $log:"
    tail -n 30 "$log"
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_all: ${#failed[@]} of ${#notebooks[@]} notebooks failed: ${failed[*]}" >&2
  exit 1
fi
echo "run_all: all ${#notebooks[@]} notebooks ran"
