#!/usr/bin/env bash
# docs/own_data.md in one go, on the CPU: from your own image folder and a pretrained teacher to a
# small model running in onnxruntime. Writes into ${OWN_DATA_OUT:-runs/own_data}:
#   folder/             Fashion-MNIST as an image folder (train/<class>/*.png, test/<class>/*.png)
#   teacher.safetensors a timm ViT trained with PyTorch on part of train/ for a 5-way task (+ teacher.json)
#   run/                retort run recipes/own_data/vit_teacher_to_resnet.toml (probe, distil, finetune)
#   student.onnx        the student exported, checked by ONNX's checker
#   student_test.safetensors  retort's inputs and logits on test/, which onnxruntime is compared against
# PyTorch, timm and onnxruntime (PyPI) make the teacher and check the export, as a user's own
# tools would; they live in a virtual environment ($RETORT_TORCH_VENV, default ~/.venvs/retort-torch)
# made on first use. retort itself uses none of them. Safe to run again: finished steps are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
RETORT_BUILD_TARGET=retort scripts/build.sh
RETORT="${RETORT_BUILD_DIR:-build}/retort"
OUT="${OWN_DATA_OUT:-runs/own_data}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
mkdir -p "$OUT"
started=$SECONDS
step() { echo "[own_data] $(date +%T) (+$((SECONDS - started)) s) $*"; }

if [[ -z "${PYTHON:-}" ]]; then
  venv="${RETORT_TORCH_VENV:-$HOME/.venvs/retort-torch}"
  if ! "$venv/bin/python" -c "import torch, timm, onnxruntime, safetensors" 2>/dev/null; then
    step "making the Python environment $venv (PyTorch, timm, onnxruntime)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r bench/torch_reference/requirements.txt
  fi
  PYTHON="$venv/bin/python"
fi

step "1. your data: an image folder"
[[ -d $OUT/folder ]] || python3 bench/own_data/make_fmnist_folder.py --out "$OUT/folder"

step "2. a pretrained teacher from outside retort (timm ViT, its own 5-way task)"
[[ -f $OUT/teacher.safetensors ]] ||
  "$PYTHON" bench/torch_reference/train_vit_teacher.py --data "$OUT/folder" --out "$OUT/teacher.safetensors"

step "3. does it fit? (retort import reads timm's names; the 5-way head is reset for 10 classes)"
"$RETORT" import --model vit_tiny --weights "$OUT/teacher.safetensors" --num-classes 10 --head reset

step "4. probe the teacher, distil it into a ResNet, fine-tune; every model chosen on validation"
if ! grep -qs '"status": "finished"' "$OUT/run/summary.json"; then
  resume=()
  [[ -d $OUT/run ]] && resume=(--resume)
  "$RETORT" run recipes/own_data/vit_teacher_to_resnet.toml --out "$OUT/run" --quiet "${resume[@]}" \
    --set data.root="$OUT/folder" --set models.teacher.weights="$OUT/teacher.safetensors"
fi

step "5. the student on the test folder, fed as in training (its inputs and logits dumped)"
"$RETORT" eval --weights "$OUT/run/models/student.safetensors" --data folder --root "$OUT/folder" \
  --dump "$OUT/student_test.safetensors"

step "6. export: ONNX (checked) and a PyTorch-loadable safetensors file"
"$RETORT" export --weights "$OUT/run/models/student.safetensors" --onnx "$OUT/student.onnx" \
  --safetensors "$OUT/student_pytorch.safetensors"

step "7. the ONNX student in onnxruntime against retort, image by image"
"$PYTHON" bench/onnx/compare_onnxruntime.py "$OUT/student.onnx" "$OUT/student_test.safetensors"

step "done in $((SECONDS - started)) s: $OUT/run/summary.json, $OUT/student.onnx"
