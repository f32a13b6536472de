#!/bin/sh
# Pseudo-depth training samples for the depth net from a rendered film whose camera moves
# (docs/training.md, "Depth", "Footage pseudo-depth from Big Buck Bunny"). Run from the
# repository root: `sh configs/depth_footage_data.sh [OUT]` (default data/depth_footage).
# Source: the film Big Buck Bunny from the PyPI package moviepy 2.1.2 (configs/bbb_film.sh
# fetches it; licences there).
set -eu
PY=${PY:-.venv/bin/python}
OUT=${1:-data/depth_footage}
VIDEO=$(PY="$PY" sh configs/bbb_film.sh)
"$PY" configs/depth_footage_data.py "$VIDEO" "$OUT"
