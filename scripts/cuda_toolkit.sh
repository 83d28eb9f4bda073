#!/usr/bin/env bash
# Print the environment for `cargo build --features cuda` on a machine
# without a GPU or a system CUDA install: nvcc, the CUDA headers and the
# libraries candle links against, all from PyPI, plus a link-time stub of
# the driver library (libcuda.so), as the CUDA toolkit itself ships in
# lib64/stubs. At run time the real driver's libcuda.so.1 is used.
#
#   eval "$(scripts/cuda_toolkit.sh)"
#   cargo build --features cuda
#
# Why the CUDA 13 wheels: `nvidia-cuda-nvcc-cu12` carries only ptxas and
# libnvvm (it is made for JAX), not the nvcc driver that candle's kernel
# build calls; `nvidia-cuda-nvcc` (CUDA 13) carries the whole compiler.
# `nvidia-cuda-cccl` brings the libcu++ headers (`<nv/target>`) the CUDA
# headers include.
# Pinned to 13.4, the newest CUDA the cudarc bindings candle uses know.
set -euo pipefail
python3 -m pip install --quiet --disable-pip-version-check \
  'nvidia-cuda-nvcc==13.4.*' 'nvidia-nvvm==13.4.*' 'nvidia-cuda-crt==13.4.*' \
  'nvidia-cuda-runtime==13.4.*' 'nvidia-cuda-nvrtc==13.4.*' \
  nvidia-cuda-cccl nvidia-cublas nvidia-curand >&2
cuda_home=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
[ -x "$cuda_home/bin/nvcc" ] || { echo "no nvcc under $cuda_home" >&2; exit 1; }
stubs="${RESTOCK_CUDA_STUBS:-$HOME/.cache/restock-cuda/lib}"
mkdir -p "$stubs"
# Unversioned names for the linker (the wheels ship only libX.so.N).
for lib in "$cuda_home"/lib/lib*.so.*; do
  base=$(basename "$lib"); ln -sf "$lib" "$stubs/${base%%.so.*}.so"
done
# The driver stub: every cu* entry point cudarc declares, as a function
# that fails. Linked by soname libcuda.so.1, so the real driver loads.
if [ ! -s "$stubs/libcuda.so" ]; then
  # The cudarc version Cargo.lock pins; its sources come with `cargo
  # fetch` (a build without the cuda feature never downloads them).
  version=$(awk '/^name = "cudarc"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' \
    "$(dirname "$0")/../Cargo.lock")
  [ -n "$version" ] || { echo "Cargo.lock names no cudarc" >&2; exit 1; }
  find_cudarc() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$version" 2>/dev/null | tail -n1 || true; }
  cudarc=$(find_cudarc)
  if [ -z "$cudarc" ]; then
    (cd "$(dirname "$0")/.." && cargo fetch --locked >&2)
    cudarc=$(find_cudarc)
  fi
  [ -n "$cudarc" ] || { echo "cudarc $version: sources not found after cargo fetch" >&2; exit 1; }
  grep -rhoE 'fn cu[A-Za-z0-9_]+' "$cudarc/src/driver/sys" | sed 's/^fn //' | sort -u \
    | awk '{print "int " $1 "(void) { return 999; }"}' > "$stubs/libcuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda_stub.c"
fi
echo "export CUDA_HOME='$cuda_home'"
echo "export PATH='$cuda_home/bin':\"\$PATH\""
echo "export LIBRARY_PATH='$stubs':\"\${LIBRARY_PATH:-}\""
echo "export LD_LIBRARY_PATH='$cuda_home/lib':\"\${LD_LIBRARY_PATH:-}\""
# cudarc (candle's CUDA bindings) knows CUDA up to 13.4: say which
# bindings to use rather than letting it parse nvcc's version.
echo "export CUDARC_CUDA_VERSION=13040"
# No GPU to ask: build PTX for compute capability 8.0 (A100 and newer run it).
echo "export CUDA_COMPUTE_CAP=\"\${CUDA_COMPUTE_CAP:-80}\""
