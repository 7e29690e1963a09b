#!/usr/bin/env bash
# Compile every CUDA source (plugins/**/*.cu, csrc/**/*.cu) once for every GPU trtnet targets: SASS for
# each architecture plus PTX of the newest (JIT for future GPUs). Architectures follow the
# toolkit like CMakeLists.txt: CUDA 13 -> 75 80 86 87 89 90 100 110 120 (Turing .. Blackwell,
# Thor 110); CUDA 12 (JetPack 6) -> 72 75 80 86 87 89 90. Warnings are errors; every
# architecture must appear in ptxas' report, with no register spills. Then the plugin library
# is linked from those objects against each TensorRT header set found. Override: NVCC,
# TRTNET_CUDA_ARCHS="87 90", TensorRT_ROOT=/a:/b (TensorRT roots with include/).
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC="${NVCC:-nvcc}"
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "compile_cuda: nvcc not found (set NVCC=/path/to/nvcc)" >&2
  exit 1
fi
version=$("$NVCC" --version | sed -n 's/.*release \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1.\2/p')
major=${version%%.*}
if [ -n "${TRTNET_CUDA_ARCHS:-}" ]; then
  archs=(${TRTNET_CUDA_ARCHS})
elif [ "$major" -ge 13 ]; then
  archs=(75 80 86 87 89 90 100 110 120)
else
  archs=(72 75 80 86 87 89 90)
fi
newest=${archs[${#archs[@]}-1]}
gencode=()
for a in "${archs[@]}"; do gencode+=(-gencode "arch=compute_${a},code=sm_${a}"); done
gencode+=(-gencode "arch=compute_${newest},code=compute_${newest}")

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
status=0
# The plugins' kernels, then the other CUDA sources (csrc/: mask assembly), whose objects go
# to a subfolder so the plugin library below links only its own.
mapfile -t sources < <(find plugins -name '*.cu' | sort; find csrc -name '*.cu' | sort)
mkdir -p "$out/csrc"
for src in "${sources[@]}"; do
  case "$src" in csrc/*) obj="$out/csrc/$(basename "${src%.cu}").o" ;; *) obj="$out/$(basename "${src%.cu}").o" ;; esac
  t0=$(date +%s)
  log="$out/$(basename "${src%.cu}").ptxas"
  if ! "$NVCC" -std=c++17 -O3 -fmad=false -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra -Werror all-warnings \
      --threads 2 -Xptxas -v -I plugins "${gencode[@]}" -c "$src" -o "$obj" 2>"$log"; then
    grep -v '^ptxas info\|bytes stack frame' "$log" >&2 || true
    echo "compile_cuda: FAILED $src" >&2
    status=1
    continue
  fi
  # ptxas reports every entry it assembles "for 'sm_XX'": each architecture must appear
  # (SASS); spills are reported too and must be zero.
  sass=$(sed -n "s/.*Compiling entry function .* for '\(sm_[0-9a-z]*\)'.*/\1/p" "$log" | sort -u | tr '\n' ' ')
  for a in "${archs[@]}"; do
    case " $sass " in *" sm_${a} "*) ;; *) echo "compile_cuda: $src lacks SASS for sm_${a}" >&2; status=1 ;; esac
  done
  spills=$(grep -c '[1-9][0-9]* bytes spill' "$log" || true)
  [ "$spills" -eq 0 ] || { echo "compile_cuda: $src spills registers in $spills kernel builds" >&2; status=1; }
  echo "compile_cuda: $src ok in $(( $(date +%s) - t0 )) s (SASS: ${sass}+ PTX compute_${newest}; no spills)"
done
echo "compile_cuda: CUDA ${version}, ${#sources[@]} sources, architectures ${archs[*]} (+PTX ${newest}), $(( $(date +%s) - start )) s"

# Link libtrtnet_plugins.so from those objects against every TensorRT header set
# ($TensorRT_ROOT, colon-separated roots, or ../shared/trt-headers/*): it must export
# TensorRT's entry points and must not need libnvinfer. In CI (CI=true) both 10.x and 11.x
# header sets must be there.
cuda_root=$(dirname "$(dirname "$(command -v "$NVCC")")")
[ -f "$cuda_root/include/cuda_runtime_api.h" ] || cuda_root=/usr/local/cuda
if [ -n "${TensorRT_ROOT:-}" ]; then
  IFS=: read -r -a trt_roots <<< "$TensorRT_ROOT"
else
  trt_roots=(../shared/trt-headers/*/)  # the header sets (folders), not the README
fi
majors=" "
for root in "${trt_roots[@]}"; do
  inc="${root%/}/include"
  if [ ! -f "$inc/NvInferRuntime.h" ]; then
    echo "compile_cuda: no TensorRT headers in $root (NvInferRuntime.h under include/)" >&2
    continue
  fi
  majors+="$(grep -hE 'define (TRT_MAJOR_ENTERPRISE|NV_TENSORRT_MAJOR) [0-9]' "$inc/NvInferVersion.h" | awk '{print $3}' | head -1) "
  lib="$out/libtrtnet_plugins.so"
  if ! ${CXX:-g++} -std=c++17 -O2 -shared -fPIC -fvisibility=hidden -Wall -Wextra -Werror -Wno-deprecated-declarations \
      -isystem "$inc" -isystem "$cuda_root/include" -I plugins \
      plugins/trtnet_plugins.cpp plugins/*/*_plugin.cpp plugins/*/*_host.cpp "$out"/*.o \
      -L"$cuda_root/lib64" -lcudart_static -ldl -lpthread -lrt -o "$lib"; then
    echo "compile_cuda: FAILED to link libtrtnet_plugins.so against $inc" >&2
    status=1
    continue
  fi
  exports=$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sort | tr '\n' ' ')
  # V3 creators only: getCreators + setLoggerFinder, as NVIDIA's own V3 plugin libraries; no
  # getPluginCreators (the IPluginV2 entry point in 10.x, issue 15 defect 6).
  [ "$exports" = "getCreators setLoggerFinder trtnetInitPlugins trtnetPluginsRegistered " ] || {
    echo "compile_cuda: unexpected exports from libtrtnet_plugins.so: $exports" >&2; status=1; }
  if ldd "$lib" | grep -q nvinfer; then echo "compile_cuda: libtrtnet_plugins.so needs libnvinfer" >&2; status=1; fi
  echo "compile_cuda: libtrtnet_plugins.so linked against $(grep -hE 'define (TRT_MAJOR_ENTERPRISE|NV_TENSORRT_MAJOR) [0-9]' "$inc/NvInferVersion.h" | awk '{print $3}' | head -1).x headers ($(du -k "$lib" | cut -f1) KiB; exports: ${exports})"
done
if [ "${CI:-}" = true ]; then
  for m in 10 11; do
    case "$majors" in *" $m "*) ;; *) echo "compile_cuda: CI needs the TensorRT $m.x headers (TensorRT_ROOT)" >&2; status=1 ;; esac
  done
fi
exit $status
