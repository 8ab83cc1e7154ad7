#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a GPU (and its Vulkan driver): builds the wgpu
# backend, runs the CubeCL AFU kernel test against the plain-ops oracle, then times one
# CIFAR-10 epoch (MobileNet-v1, relu and the shared AFU) on generated data in the real format
# and one on the CPU for the ratio. Prints everything; writes nothing outside $OUT (default
# ./gpu-check).
#
#   scripts/gpu_check.sh [images-per-epoch, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

echo "== build (wgpu)"
cargo build --release --features wgpu 2>&1 | tail -2
echo "== CubeCL kernel vs oracle"
cargo test --release --features wgpu --lib afu::kernel::tests::cube_kernel 2>&1 | tail -4

echo "== generated CIFAR-10 (binary format, random pixels: for timing only)"
python3 - "$OUT/cifar" <<'PY'
import os, sys
d = os.path.join(sys.argv[1], "cifar-10-batches-bin")
os.makedirs(d, exist_ok=True)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            for i in range(10000):
                f.write(bytes([i % 10]) + os.urandom(3072))
PY

for dev in wgpu cpu; do
  echo "== one epoch of $N images on $dev"
  "${CARGO_TARGET_DIR:-target}/release/afu" cifar10 --data "$OUT/cifar" --device "$dev" --variants relu,afu-relu-8 \
    --epochs 1 --limit-train "$N" --limit-test 1000 --no-progress --out "$OUT/run-$dev" | tail -4
done
echo "seconds per epoch of $N images: see the s/epoch column; x $((50000 / N)) for the full 50 000"
