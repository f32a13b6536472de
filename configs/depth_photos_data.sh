#!/bin/sh
# Real pictures without depth for the depth net's edge penalty (docs/training.md, "Depth",
# "Real pictures for the edge penalty"). Run from the repository root:
# `sh configs/depth_photos_data.sh [OUT]` (default data/depth_photos).
# Source: the film Big Buck Bunny from the PyPI package moviepy 2.1.2 (configs/bbb_film.sh
# fetches it; licences there).
set -eu
PY=${PY:-.venv/bin/python}
OUT=${1:-data/depth_photos}
VIDEO=$(PY="$PY" sh configs/bbb_film.sh)
"$PY" configs/depth_photos_data.py "$VIDEO" "$OUT"
