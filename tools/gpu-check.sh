#!/usr/bin/env bash
# gpu-check.sh: everything we want to know from a lent GPU machine, in one command that ends in under 8 minutes
# (issue 12, item 11). Build here first (no Rust toolchain is needed there):
#
#   cargo build --release && cargo test --release --no-run      # the CLI and the test binaries
#   tools/gpu-check.sh --stage                                   # copies them + the Vulkan loader into .gpu/
#
# then run it on the device machine with `.gpu` carried (and `.gl` too if the loader had to travel, see
# /work/.library/device/README.md):
#
#   bash tools/gpu-check.sh            # writes $OUT (or ./gpu-check-out): log.txt and gpu-check.tgz with info.txt,
#                                      # tests.txt, bench.json, workload-{tiny,small,paper}.{txt,json},
#                                      # tune-{tiny,small}.{txt,json}, workload-{tiny,small}-tuned.txt,
#                                      # torch-cuda-*.txt (one archive: the device tool returns at most 8 files)
#
# Steps, each under its own time limit so one slow step cannot eat the others: adapter info; the op tests (lib
# test binary, all kernels against their CPU references, on the GPU adapter); the kernel bench; the workload
# bench of tiny, small and paper; PyTorch-CUDA on the same presets when torch is importable
# (tools/compare_torch.py --device cuda: the package is pure Python). Put the card's numbers in the README.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=.gpu

if [ "${1:-}" = "--stage" ]; then
  rm -rf "$STAGE" && mkdir -p "$STAGE/lib"
  cp target/release/medsegdiff "$STAGE/"
  # the library's unit tests (every op against its CPU reference): the newest lib test binary
  lib_test=$(ls -t target/release/deps/medsegdiff-* 2>/dev/null | grep -v '\.d$' | while read -r f; do
    [ -x "$f" ] && "$f" --list 2>/dev/null | grep -q 'ops::conv::tests' && echo "$f" && break; done)
  [ -n "$lib_test" ] && cp "$lib_test" "$STAGE/lib-tests"
  cp -L /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$STAGE/lib/" 2>/dev/null || true
  du -sh "$STAGE"
  exit 0
fi

DEST=${OUT:-gpu-check-out}
mkdir -p "$DEST"
OUT=$(mktemp -d)
trap 'cp "$OUT/log.txt" "$DEST/" 2>/dev/null; tar czf "$DEST/gpu-check.tgz" -C "$OUT" .' EXIT
export LD_LIBRARY_PATH="$PWD/$STAGE/lib:${LD_LIBRARY_PATH:-}"
if ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
BIN="$STAGE/medsegdiff"
# the GPU, never a software adapter that may also be installed
export MEDSEGDIFF_ADAPTER=${MEDSEGDIFF_ADAPTER:-NVIDIA}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
step() { # step SECONDS NAME OUTFILE CMD...
  local t=$1 name=$2 out=$3; shift 3
  log "$name"
  timeout "$t" "$@" >"$OUT/$out" 2>&1
  local rc=$?
  log "$name: exit $rc"
  tail -5 "$OUT/$out" | tee -a "$OUT/log.txt"
}

nvidia-smi -L >>"$OUT/log.txt" 2>&1 || true
step 30 info info.txt "$BIN" info
[ -x "$STAGE/lib-tests" ] && step 150 "op tests" tests.txt "$STAGE/lib-tests" ops:: --test-threads 4
step 90 "kernel bench" bench-table.txt "$BIN" bench --json "$OUT/bench.json"
for w in tiny small paper; do
  MEDSEGDIFF_TUNE=off step 60 "workload $w" "workload-$w.txt" "$BIN" bench --workload "$w" --json "$OUT/workload-$w.json" --top 25
done
# the rung table of this GPU for tiny and small (the GPU-class rungs v3 compete here), then their workloads with it
for w in tiny small; do
  MEDSEGDIFF_TUNE_CACHE="$OUT/tune-$w.json" step 90 "tune $w" "tune-$w.txt" "$BIN" tune --preset "$w"
  MEDSEGDIFF_TUNE_CACHE="$OUT/tune-$w.json" step 60 "workload $w tuned" "workload-$w-tuned.txt" "$BIN" bench --workload "$w" --top 25
done
if python3 -c 'import torch, med_seg_diff_pytorch; assert torch.cuda.is_available()' 2>/dev/null; then
  for w in tiny small paper; do
    step 60 "torch cuda $w" "torch-cuda-$w.txt" python3 tools/compare_torch.py --preset "$w" --device cuda --bin "$BIN"
  done
else
  log "no CUDA PyTorch with med_seg_diff_pytorch here: PyTorch-CUDA peer skipped (install it or carry a venv)"
fi
log "done"
