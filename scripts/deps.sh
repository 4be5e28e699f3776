#!/usr/bin/env bash
# Installs the Debian packages retort needs, only when one is missing.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again.
set -euo pipefail
RETORT_PACKAGES=(build-essential cmake pkg-config zlib1g-dev libopenblas-dev doctest-dev
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libfmt-dev libstb-dev libdnnl-dev dataset-fashion-mnist python3
  openmpi-bin libopenmpi-dev chromium
  libonnx-dev libprotobuf-dev)  # ONNX export (models/onnx_export.h); onnx's headers include protobuf's
missing=()
for p in "${RETORT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[deps] installing: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
else
  echo "[deps] all Debian packages present"
fi
if [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  echo "[deps] nvcc found: CUDA kernels will be compiled"
else
  echo "[deps] no nvcc at /usr/local/cuda: building the CPU engine only"
fi
