#!/usr/bin/env bash
# EffML core against PyTorch: training time per epoch and batch-1 latency, same models, same
# data, same optimizer, same batch size and thread count, measured in one run, interleaved.
# Then the integer-only VGG of Lab 2 against the fp32 VGG (bench_int8).
#
#   bash benchmarks/run.sh                  # lenet300, lenet5, vgg at batch 64, 1 and 2 threads
#   bash benchmarks/run.sh --quick          # 10,000 images per model, 200 latency repeats
#   bash benchmarks/run.sh --int8 only      # only the int8-against-fp32 latency
#   bash benchmarks/run.sh --help
#
# Builds bench_core if needed (in build/ unless --build-dir), then for each model and thread
# count runs bench_core and benchmarks/bench_torch.py alternately, --rounds times each
# (effml, torch, effml, torch, ...), keeps the best round of each side and prints a table.
# Last, it writes the integer-only VGG with the lab2 runner's int8_vgg task and runs bench_int8
# on it and the dense VGG (--int8 off skips this).
# See benchmarks/README.md for what is measured and how.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3  # Debian's python3 with python3-torch (not a pyenv python3 on PATH)

BUILD_DIR="$ROOT/build"
MODELS="lenet300 lenet5 vgg"
THREADS="1 2"
BATCH=64
ROUNDS=2
IMAGES=0          # 0: the full 60,000-image epoch
VGG_IMAGES=10000  # vgg is timed on a prefix to keep the run short
LAT_WARMUP=50
LAT_REPEATS=500
WAIT_QUIET=0      # seconds to wait for a quiet machine before measuring
BLAS_DIR=""       # a second build with -DEFFML_EIGEN_BLAS=ON, timed as a third side
TORCH_CONFIGS=all # with n > 1 threads, PyTorch is timed in three thread configurations
INT8=on           # on: also bench_int8; off: not; only: bench_int8 alone (no PyTorch needed)
INT8_ROUNDS=5     # bench_int8's interleaved rounds

usage() {
  cat <<EOF
usage: bash benchmarks/run.sh [options]
  --build-dir DIR     build folder holding (or to hold) bench_core   [$BUILD_DIR]
  --models "A B"      models to time                                 [$MODELS]
  --threads "1 2"     thread counts, set explicitly on both sides    [$THREADS]
  --batch-size N      training batch size                            [$BATCH]
  --rounds N          interleaved rounds per side; the best is kept  [$ROUNDS]
  --images N          time N training images and scale to the epoch (0 = all 60,000) [$IMAGES]
  --vgg-images N      the same for vgg                               [$VGG_IMAGES]
  --latency-repeats N timed batch-1 forward passes (after $LAT_WARMUP warm-up) [$LAT_REPEATS]
  --wait-quiet SEC    first wait up to SEC seconds for the 1-minute load average to drop
                      below 0.5 (other work on the machine skews every figure)
  --blas-build DIR    also time a build with -DEFFML_EIGEN_BLAS=ON in DIR (configured there
                      if needed) as a third side, and print a second table comparing it
  --torch-configs default|all
                      with n > 1 threads, time PyTorch only as configured above, or (all)
                      also with OPENBLAS_NUM_THREADS=1 and with OMP_WAIT_POLICY=PASSIVE,
                      and keep its fastest                           [$TORCH_CONFIGS]
  --int8 on|off|only  also time the integer-only VGG of Lab 2 against the fp32 VGG
                      (bench_int8, after the lab2 runner's int8_vgg task writes the model),
                      not, or only that                              [$INT8]
  --int8-rounds N     bench_int8's interleaved rounds                [$INT8_ROUNDS]
  --quick             --images 10000 --latency-repeats 200 --rounds 1 --int8-rounds 3
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --batch-size) BATCH=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --vgg-images) VGG_IMAGES=$2; shift 2 ;;
    --latency-repeats) LAT_REPEATS=$2; shift 2 ;;
    --wait-quiet) WAIT_QUIET=$2; shift 2 ;;
    --blas-build) BLAS_DIR=$(realpath -m "$2"); shift 2 ;;
    --torch-configs) TORCH_CONFIGS=$2; shift 2 ;;
    --int8) INT8=$2; shift 2 ;;
    --int8-rounds) INT8_ROUNDS=$2; shift 2 ;;
    --quick) IMAGES=10000; VGG_IMAGES=10000; LAT_REPEATS=200; ROUNDS=1; INT8_ROUNDS=3; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

[[ $TORCH_CONFIGS == all || $TORCH_CONFIGS == default ]] ||
  { echo "run.sh: --torch-configs takes 'all' or 'default', not '$TORCH_CONFIGS'" >&2; exit 2; }
[[ $INT8 == on || $INT8 == off || $INT8 == only ]] ||
  { echo "run.sh: --int8 takes 'on', 'off' or 'only', not '$INT8'" >&2; exit 2; }
if [[ $INT8 != only ]]; then
  [[ -x $PY ]] || { echo "run.sh: $PY not found (apt-get install python3-torch)" >&2; exit 1; }
  $PY -c "import torch, numpy" 2>/dev/null ||
    { echo "run.sh: $PY cannot import torch and numpy (apt-get install python3-torch)" >&2; exit 1; }
fi

# ---- build ----------------------------------------------------------------------------------
build_bench() {  # build-dir target... -- [cmake options...]: configures if needed, builds
  local dir=$1; shift
  local targets=()
  while [[ $# -gt 0 && $1 != -- ]]; do targets+=("$1"); shift; done
  if [[ $# -gt 0 ]]; then shift; fi
  if [[ ! -f $dir/CMakeCache.txt ]]; then
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null ||
      { echo "run.sh: configuring $dir failed" >&2; exit 1; }
  fi
  local log target
  log=$(mktemp)
  for target in "${targets[@]}"; do
    if ! cmake --build "$dir" --target "$target" -j "$(nproc)" >"$log" 2>&1; then
      cat "$log" >&2; rm -f "$log"
      echo "run.sh: building $target in $dir failed" >&2; exit 1
    fi
  done
  rm -f "$log"
}
if [[ $INT8 != only ]]; then
  build_bench "$BUILD_DIR" bench_core
  [[ -x $BUILD_DIR/benchmarks/bench_core ]] ||
    { echo "run.sh: $BUILD_DIR/benchmarks/bench_core was not built" >&2; exit 1; }
fi
if [[ $INT8 != off ]]; then
  build_bench "$BUILD_DIR" bench_int8 lab2_quantization_runner
  for f in benchmarks/bench_int8 tests/lab2_quantization_runner; do
    [[ -x $BUILD_DIR/$f ]] || { echo "run.sh: $BUILD_DIR/$f was not built" >&2; exit 1; }
  done
fi
BENCH="$BUILD_DIR/benchmarks/bench_core"
BENCH_BLAS=""
if [[ -n $BLAS_DIR && $INT8 != only ]]; then
  build_bench "$BLAS_DIR" bench_core -- -DEFFML_EIGEN_BLAS=ON
  [[ -x $BLAS_DIR/benchmarks/bench_core ]] ||
    { echo "run.sh: $BLAS_DIR/benchmarks/bench_core was not built" >&2; exit 1; }
  grep -q '^EFFML_EIGEN_BLAS:BOOL=ON' "$BLAS_DIR/CMakeCache.txt" ||
    { echo "run.sh: $BLAS_DIR is not configured with -DEFFML_EIGEN_BLAS=ON" >&2; exit 1; }
  BENCH_BLAS="$BLAS_DIR/benchmarks/bench_core"
fi

# ---- the integer-only VGG against fp32 (bench_int8) -----------------------------------------
# The lab2 runner's int8_vgg task calibrates and quantizes the dense VGG with Lab 2's functions
# (Tasks 10 to 12) and writes the integer-only model; bench_int8 then times it against the
# dense VGG. Where those functions are not written yet (a student tree), it says so and skips.
int8_benchmark() {  # results-dir
  local out=$1 rc=0
  local dense="$ROOT/labs/lab2_quantization/vgg_dense.safetensors"
  mkdir -p "$out"
  echo
  echo "Integer-only VGG (Lab 2's int8_vgg) against the fp32 VGG: bench_int8"
  local cpu cache=$BUILD_DIR/CMakeCache.txt
  cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
  echo "CPU           $cpu, $(nproc) logical CPUs"
  echo "effml build   $BUILD_DIR: $(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache")," \
       "EFFML_OPENMP=$(sed -n 's/^EFFML_OPENMP:[A-Z]*=//p' "$cache")," \
       "EFFML_NATIVE=$(sed -n 's/^EFFML_NATIVE:[A-Z]*=//p' "$cache")"
  EFFML_LAB_DIR="$ROOT/labs/lab2_quantization" "$BUILD_DIR/tests/lab2_quantization_runner" \
    run int8_vgg none "$out/int8_vgg.safetensors" >"$out/int8_vgg.log" 2>&1 || rc=$?
  if [[ $rc -eq 3 ]]; then
    echo "run.sh: the lab2 runner's int8_vgg task calls a function not written yet" \
         "(Tasks 10 to 12 of labs/lab2_quantization/lab2.cpp); int8 benchmark skipped:"
    cat "$out/int8_vgg.log"
    return 0
  elif [[ $rc -ne 0 ]]; then
    cat "$out/int8_vgg.log" >&2
    echo "run.sh: the lab2 runner's int8_vgg task failed (exit code $rc)" >&2; exit 1
  fi
  sed 's/^/runner        /' "$out/int8_vgg.log"
  # shellcheck disable=SC2086  # THREADS is a list of thread counts
  "${CLEAN_ENV[@]}" OPENBLAS_NUM_THREADS=1 "$BUILD_DIR/benchmarks/bench_int8" "$dense" \
    "$out/int8_vgg.safetensors" --threads $THREADS --rounds "$INT8_ROUNDS" \
    --json "$out/int8.json"
  echo "Raw JSON: $out/int8.json"
}
CLEAN_ENV=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
if [[ $INT8 == only ]]; then
  int8_benchmark "$BUILD_DIR/benchmarks/results/$(date +%Y%m%d-%H%M%S)"
  exit 0
fi

# ---- a quiet machine ------------------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
if [[ $WAIT_QUIET -gt 0 ]]; then
  waited=0
  while awk -v l="$(load1)" 'BEGIN { exit !(l >= 0.5) }' && [[ $waited -lt $WAIT_QUIET ]]; do
    sleep 10; waited=$((waited + 10))
  done
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- settings -------------------------------------------------------------------------------
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD_DIR/CMakeCache.txt" | head -1; }
CPU=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
NCPU=$(nproc)
BLAS_LIB=$(readlink -f "$(/sbin/ldconfig -p | awk '/libblas\.so\.3 /{print $NF; exit}')" 2>/dev/null || echo unknown)
OPENBLAS_VER=$(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo unknown)
OPENBLAS_CORE=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PY -c '
import ctypes
try:
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_get_corename.restype = ctypes.c_char_p
    print(lib.openblas_get_corename().decode())
except OSError:
    print("unknown")')
TORCH_VER=$($PY -c 'import torch; print(torch.__version__)')
TORCH_DEB=$(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null || echo "not from Debian")
CORETYPE_SET=${OPENBLAS_CORETYPE+set}
L2_SET=${OPENBLAS_L2_SIZE+set}
ENV_SET=""
if [[ -n $CORETYPE_SET || -n $L2_SET ]]; then ENV_SET=1; fi

echo "EffML core vs PyTorch: training time per epoch and batch-1 latency"
echo "date          $(date '+%Y-%m-%d %H:%M %Z')"
echo "CPU           $CPU, $NCPU logical CPUs"
echo "load average  $LOAD_START (1, 5, 15 min) at the start; every figure suffers from other work"
echo "threads       $THREADS, set explicitly on both sides: bench_core --threads n;"
echo "              torch.set_num_threads(n) + torch.set_num_interop_threads(1); and"
echo "              OMP_NUM_THREADS=n OPENBLAS_NUM_THREADS=n in each command (PyTorch's own"
echo "              default here is 1 thread, and its OpenBLAS calls ignore set_num_threads)"
if [[ $TORCH_CONFIGS == all ]]; then
  echo "              with n > 1, PyTorch's OpenMP pool and OpenBLAS's own threads compete for"
  echo "              the cores; it is timed in three configurations and keeps its fastest:"
  echo "              'default' (as above), 'blas1' (OPENBLAS_NUM_THREADS=1: n threads in all),"
  echo "              'passive' (OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep, not spin)"
fi
echo "batch size    $BATCH; SGD lr 0.05, momentum 0.9, weight decay 5e-4, constant rate"
echo "training      $( [[ $IMAGES -gt 0 ]] && echo "first $IMAGES images" || echo "the full 60,000-image epoch" ) (vgg: $( [[ $VGG_IMAGES -gt 0 ]] && echo "first $VGG_IMAGES" || echo "all" )), scaled to 60,000; 5 warm-up batches untimed"
echo "latency       batch 1, evaluation mode (torch: model.eval() + no_grad), median of $LAT_REPEATS after $LAT_WARMUP warm-up"
echo "rounds        $ROUNDS per side, interleaved effml, torch, effml, torch, ...; the best round is kept"
echo "effml build   $BUILD_DIR: $(cache_get CMAKE_BUILD_TYPE), EFFML_OPENMP=$(cache_get EFFML_OPENMP), EFFML_NATIVE=$(cache_get EFFML_NATIVE), EFFML_EIGEN_BLAS=$(cache_get EFFML_EIGEN_BLAS), $(g++ --version | head -1)"
echo "torch         $TORCH_VER (python3-torch $TORCH_DEB)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $PY -c '
import torch
torch.set_num_threads(1); torch.set_num_interop_threads(1)
keep = ("ATen parallel backend", "MKL not", "Intel(R) MKL-DNN", "std::thread::hardware_concurrency")
lines = [l.strip() for l in torch.__config__.parallel_info().splitlines()]
print("              parallel_info (threads=1): " + "; ".join(l for l in lines if l.startswith(keep)))
import re
blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
print("              BLAS_INFO=" + (blas.group(1) if blas else "unknown")
      + " (the system libblas.so.3); oneDNN (mkldnn) available: "
      + str(torch.backends.mkldnn.is_available()))'
echo "OpenBLAS      $OPENBLAS_VER ($BLAS_LIB), core detected: $OPENBLAS_CORE"
echo "              in this environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>}"
echo "              both benchmark commands run with these two unset (env -u, in that command"
echo "              only): a forced core type or L2 size slows OpenBLAS, hence PyTorch's linear layers"
if [[ -n $ENV_SET ]]; then
  echo "              PyTorch is also timed with them as set; see the 'torch(env)' columns"
fi
if [[ -n $BENCH_BLAS ]]; then
  echo "effml + BLAS  $BLAS_DIR (-DEFFML_EIGEN_BLAS=ON), timed as a third side, interleaved;"
  echo "              OPENBLAS_NUM_THREADS=1 there: the core's own loops split the work"
fi
echo

# ---- measurements ---------------------------------------------------------------------------
OUT="$BUILD_DIR/benchmarks/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

run_effml() {  # model threads images round [blas]
  local bench=$BENCH tag=effml blas_threads=$2
  if [[ ${5-} == blas ]]; then bench=$BENCH_BLAS; tag=effmlblas; blas_threads=1; fi
  "${CLEAN_ENV[@]}" OMP_NUM_THREADS="$2" OPENBLAS_NUM_THREADS="$blas_threads" \
    "$bench" "$1" --threads "$2" --batch-size "$BATCH" --images "$3" \
    --latency-warmup "$LAT_WARMUP" --latency-repeats "$LAT_REPEATS" >"$OUT/$1-t$2-$tag-r$4.json"
}
run_torch() {  # model threads images round [env|blas1|passive]
  local prefix=("${CLEAN_ENV[@]}") tag=torch blas_threads=$2
  case ${5-} in
    env) prefix=(env); tag=torchenv ;;
    blas1) tag=torchblas1; blas_threads=1 ;;
    passive) prefix+=(OMP_WAIT_POLICY=PASSIVE); tag=torchpassive ;;
  esac
  "${prefix[@]}" OMP_NUM_THREADS="$2" OPENBLAS_NUM_THREADS="$blas_threads" \
    $PY "$ROOT/benchmarks/bench_torch.py" "$1" --threads "$2" --batch-size "$BATCH" \
    --images "$3" --latency-warmup "$LAT_WARMUP" --latency-repeats "$LAT_REPEATS" \
    >"$OUT/$1-t$2-$tag-r$4.json"
}

for model in $MODELS; do
  images=$IMAGES
  if [[ $model == vgg ]]; then images=$VGG_IMAGES; fi
  for t in $THREADS; do
    for ((r = 1; r <= ROUNDS; r++)); do
      echo "  $model, $t thread(s), round $r/$ROUNDS ..." >&2
      run_effml "$model" "$t" "$images" "$r"
      run_torch "$model" "$t" "$images" "$r"
      if [[ $TORCH_CONFIGS == all && $t -gt 1 ]]; then
        run_torch "$model" "$t" "$images" "$r" blas1
        run_torch "$model" "$t" "$images" "$r" passive
      fi
      if [[ -n $ENV_SET ]]; then run_torch "$model" "$t" "$images" "$r" env; fi
      if [[ -n $BENCH_BLAS ]]; then run_effml "$model" "$t" "$images" "$r" blas; fi
    done
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- table ----------------------------------------------------------------------------------
$PY - "$OUT" "$MODELS" "$THREADS" "$ENV_SET" <<'EOF'
import glob, json, sys
out, models, threads, env_set = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]

CONFIG_NAMES = {"torch": "default", "torchblas1": "blas1", "torchpassive": "passive"}

def best(model, t, *sides):
    """The fastest round of one side (of several configurations of it: the fastest of all), its
    CPU use, its configuration and how far the rounds of that configuration were apart."""
    runs = []
    for side in sides:
        for f in sorted(glob.glob(f"{out}/{model}-t{t}-{side}-r*.json")):
            runs.append((side, json.load(open(f))))
    if not runs:
        return None
    side, fastest = min(runs, key=lambda sr: sr[1]["train"]["seconds_per_epoch"])
    epochs = [r["train"]["seconds_per_epoch"] for s, r in runs if s == side]
    tr = fastest["train"]
    return {"epoch": tr["seconds_per_epoch"],
            # CPU seconds of all threads per wall second: about the thread count when the
            # run had its cores, about 1 when a multi-threaded run had to share them.
            "cores": tr["cpu_seconds_timed"] / tr["seconds_timed"],
            "lat": min(r["latency"]["median_ms"] for _, r in runs),
            "spread": max(epochs) / min(epochs) - 1,
            "images": tr["images_timed"],
            "config": CONFIG_NAMES.get(side, side)}

def suspect(t, *sides):
    """A row whose figures the machine's other work probably skewed."""
    return any(x["spread"] > 0.25 or (int(t) > 1 and x["cores"] < 1.2) for x in sides)

head = (f"{'model':<9} {'thr':>3} {'images':>6} | {'effml s/ep':>10} {'cores':>5} "
        f"{'torch s/ep':>10} {'cores':>5} {'config':>7} {'speed-up':>8} | {'effml ms':>8} "
        f"{'torch ms':>8} {'speed-up':>8}")
if env_set:
    head += f" | {'torch(env) s/ep':>15} {'torch(env) ms':>13}"
print(head)
print("-" * len(head))
flagged = False
for m in models:
    for t in threads:
        e, p = best(m, t, "effml"), best(m, t, *CONFIG_NAMES)
        if e is None or p is None:
            continue
        mark = "!" if suspect(t, e, p) else " "
        flagged |= mark == "!"
        line = (f"{m:<9} {t:>3} {e['images']:>6} | {e['epoch']:>10.2f} {e['cores']:>5.2f} "
                f"{p['epoch']:>10.2f} {p['cores']:>5.2f} {p['config']:>7} "
                f"{p['epoch'] / e['epoch']:>7.2f}x | "
                f"{e['lat']:>8.3f} {p['lat']:>8.3f} {p['lat'] / e['lat']:>7.2f}x {mark}")
        if env_set:
            q = best(m, t, "torchenv")
            if q is not None:
                line += f"| {q['epoch']:>15.2f} {q['lat']:>13.3f}"
        print(line)
print()
print("s/ep: seconds per 60,000-image training epoch (scaled from the images timed), best round;")
print("cores: CPU seconds per wall second in that round; config: PyTorch's thread configuration")
print("of that round (see the top); ms: batch-1 inference latency, median, best round (of all")
print("configurations); speed-up: torch / effml (> 1: effml is faster).")
if flagged:
    print("!: rounds more than 25% apart, or a multi-threaded run that got little more than one")
    print("   core: other work on the machine skewed these figures; measure again when it is quiet.")
print("Raw JSON: " + out)

if glob.glob(f"{out}/*-effmlblas-r*.json"):
    print()
    head = (f"{'model':<9} {'thr':>3} | {'effml s/ep':>10} {'+BLAS s/ep':>10} {'BLAS gain':>9} | "
            f"{'effml ms':>8} {'+BLAS ms':>8} {'BLAS gain':>9}")
    print(head)
    print("-" * len(head))
    for m in models:
        for t in threads:
            e, b = best(m, t, "effml"), best(m, t, "effmlblas")
            if e is None or b is None:
                continue
            mark = "!" if suspect(t, e, b) else " "
            print(f"{m:<9} {t:>3} | {e['epoch']:>10.2f} {b['epoch']:>10.2f} "
                  f"{e['epoch'] / b['epoch']:>8.2f}x | {e['lat']:>8.3f} {b['lat']:>8.3f} "
                  f"{e['lat'] / b['lat']:>8.2f}x {mark}")
    print()
    print("+BLAS: the build with -DEFFML_EIGEN_BLAS=ON; BLAS gain: effml / effml+BLAS time")
    print("(> 1: the BLAS build is faster); ! as above.")
EOF
echo "load average  $LOAD_END (1, 5, 15 min) at the end"
if [[ $INT8 == on ]]; then int8_benchmark "$OUT"; fi
