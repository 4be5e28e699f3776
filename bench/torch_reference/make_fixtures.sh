#!/usr/bin/env bash
# Regenerates tests/fixtures/torch/*.safetensors from PyTorch (torchvision ResNet, timm ViT,
# RepDistiller CIFAR ResNet, Hinton KD). Makes a virtual environment on first use:
#   bench/torch_reference/make_fixtures.sh            # venv in $RETORT_TORCH_VENV or ~/.venvs/retort-torch
#   PYTHON=/path/to/python bench/torch_reference/make_fixtures.sh   # a Python that already has torch
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  venv="${RETORT_TORCH_VENV:-$HOME/.venvs/retort-torch}"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -r "$here/requirements.txt"
  fi
  PYTHON="$venv/bin/python"
fi
"$PYTHON" "$here/make_fixtures.py" --out "$here/../../tests/fixtures/torch" "$@"
