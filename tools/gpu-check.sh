#!/usr/bin/env bash
# gpu-check.sh: everything we want to know from a lent GPU machine, in one command that ends in under 8 minutes
# (issue 12, item 11). Build here first (no Rust toolchain is needed there):
#
#   cargo build --release && cargo test --release --no-run      # the CLI and the test binaries
#   tools/gpu-check.sh --stage                                   # copies them + the Vulkan loader into .gpu/
#
# then run it on the device machine with `.gpu` carried (and `.gl` too if the loader had to travel, see
# /work/.library/device/README.md; `.whl` with the package's wheels for the PyTorch-CUDA peer):
#
#   bash tools/gpu-check.sh            # writes $OUT (or ./gpu-check-out): log.txt and gpu-check.tgz with info.txt,
#                                      # tests.txt, workload-{tiny,small}[-tuned].{txt,json}, tune-*.txt, tune.json,
#                                      # torch-cuda-*.txt, bench.json, workload-paper-tuned.* (one archive, packed
#                                      # after every step: the device tool returns at most 8 files)
#
# Steps, each under its own time limit and all under one deadline (GPU_CHECK_SECONDS, default 480) so one slow
# step cannot eat the others: adapter info; the op tests (lib test binary, all kernels against their CPU
# references, on the GPU adapter); per preset tiny and small the untuned workload bench, `tune`, the tuned
# workload bench and PyTorch-CUDA eager (tools/compare_torch.py --device cuda: the package is pure Python);
# the kernel bench; paper tuned and its PyTorch-CUDA peer. Put the card's numbers in the README.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=.gpu

if [ "${1:-}" = "--stage" ]; then
  rm -rf "$STAGE" && mkdir -p "$STAGE/lib"
  cp target/release/medsegdiff "$STAGE/" && strip "$STAGE/medsegdiff"  # symbols off: the tree travels in 64 MiB
  # the library's unit tests (every op against its CPU reference): the newest lib test binary
  lib_test=$(ls -t target/release/deps/medsegdiff-* 2>/dev/null | grep -v '\.d$' | while read -r f; do
    [ -x "$f" ] && "$f" --list 2>/dev/null | grep -c 'ops::conv::tests' >/dev/null && echo "$f" && break; done)  # -c: no SIGPIPE under pipefail
  [ -n "$lib_test" ] && cp "$lib_test" "$STAGE/lib-tests" && strip "$STAGE/lib-tests"
  cp -L /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$STAGE/lib/" 2>/dev/null || true
  du -sh "$STAGE"
  exit 0
fi

DEST=${OUT:-gpu-check-out}
mkdir -p "$DEST"
OUT=$(mktemp -d)
# what the step wrote is packed after every step, so a run stopped at its limit still brings back what it got
pack() { cp "$OUT/log.txt" "$DEST/" 2>/dev/null; tar czf "$DEST/gpu-check.tgz" -C "$OUT" . 2>/dev/null; }
trap pack EXIT
# one deadline for the whole script (GPU_CHECK_SECONDS, default 480): a step gets what is left, or is skipped
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-480}))
export LD_LIBRARY_PATH="$PWD/$STAGE/lib:${LD_LIBRARY_PATH:-}"
if ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
# med-seg-diff-pytorch and beartype travel as wheels in .whl (the machine has torch but not the package)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
BIN="$STAGE/medsegdiff"
# the GPU, never a software adapter that may also be installed
export MEDSEGDIFF_ADAPTER=${MEDSEGDIFF_ADAPTER:-NVIDIA}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
step() { # step SECONDS NAME OUTFILE CMD...
  local t=$1 name=$2 out=$3; shift 3
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 15 ]; then log "$name: skipped (${left}s left of the deadline)"; return; fi
  [ "$t" -gt "$left" ] && t=$left
  log "$name (limit ${t}s)"
  timeout "$t" "$@" >"$OUT/$out" 2>&1
  local rc=$?
  log "$name: exit $rc"
  tail -4 "$OUT/$out" | tee -a "$OUT/log.txt"
  pack
}

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv; } \
  >>"$OUT/log.txt" 2>&1 || true
step 30 info info.txt "$BIN" info
[ -x "$STAGE/lib-tests" ] && step 120 "op tests" tests.txt "$STAGE/lib-tests" ops:: --test-threads 8
# per preset: the untuned workload (the CPU-class defaults), the rung table of this GPU (the GPU-class rungs
# compete), the workload with it, and PyTorch-CUDA eager on the same config
have_torch=0
python3 -c 'import torch, med_seg_diff_pytorch; assert torch.cuda.is_available()' 2>/dev/null && have_torch=1
[ $have_torch = 1 ] || log "no CUDA PyTorch with med_seg_diff_pytorch here: PyTorch-CUDA peer skipped"
for w in tiny small; do
  MEDSEGDIFF_TUNE=off step 45 "workload $w untuned" "workload-$w.txt" \
    "$BIN" bench --workload "$w" --reps 3 --json "$OUT/workload-$w.json" --top 25
  MEDSEGDIFF_TUNE_CACHE="$OUT/tune.json" step 75 "tune $w" "tune-$w.txt" "$BIN" tune --preset "$w"
  MEDSEGDIFF_TUNE_CACHE="$OUT/tune.json" step 45 "workload $w tuned" "workload-$w-tuned.txt" \
    "$BIN" bench --workload "$w" --reps 3 --json "$OUT/workload-$w-tuned.json" --top 25
  [ $have_torch = 1 ] && step 60 "torch cuda $w" "torch-cuda-$w.txt" \
    python3 tools/compare_torch.py --preset "$w" --device cuda --bin ''
done
step 60 "kernel bench" bench-table.txt "$BIN" bench --json "$OUT/bench.json"
MEDSEGDIFF_TUNE_CACHE="$OUT/tune.json" step 90 "tune paper" tune-paper.txt "$BIN" tune --preset paper
MEDSEGDIFF_TUNE_CACHE="$OUT/tune.json" step 60 "workload paper tuned" workload-paper-tuned.txt \
  "$BIN" bench --workload paper --reps 2 --json "$OUT/workload-paper-tuned.json" --top 25
[ $have_torch = 1 ] && step 60 "torch cuda paper" torch-cuda-paper.txt \
  python3 tools/compare_torch.py --preset paper --device cuda --bin ''
log "done"
