#!/bin/sh
# Pseudo-depth training samples for the depth net from a rendered film whose camera moves
# (docs/training.md, "Depth", "Footage pseudo-depth from Big Buck Bunny"). Run from the
# repository root: `sh configs/depth_footage_data.sh [OUT]` (default data/depth_footage).
# Source: the PyPI package moviepy 2.1.2 (MIT licence); its source distribution ships the
# whole film Big Buck Bunny ((c) Blender Foundation, CC BY 3.0) as
# docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip ->
# moviepy_10_minutes/resources/bbb.mp4 (1280x720, 24 fps, 9:56). Only the package registry
# is needed (pip download); nothing is imported from moviepy.
set -eu
PY=${PY:-.venv/bin/python}
OUT=${1:-data/depth_footage}
SRC=${SRC:-data/src}
VIDEO="$SRC/moviepy/bbb.mp4"
mkdir -p "$SRC/moviepy"
if [ ! -f "$VIDEO" ]; then
  if [ ! -f "$SRC/moviepy-2.1.2.tar.gz" ]; then
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --dest "$SRC" moviepy==2.1.2
  fi
  ZIP=moviepy-2.1.2/docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip
  "$PY" - "$SRC/moviepy-2.1.2.tar.gz" "$ZIP" "$VIDEO" <<'PYEOF'
import io, sys, tarfile, zipfile
with tarfile.open(sys.argv[1]) as tar:
    data = tar.extractfile(sys.argv[2]).read()
with zipfile.ZipFile(io.BytesIO(data)) as z, open(sys.argv[3], "wb") as f:
    f.write(z.read("moviepy_10_minutes/resources/bbb.mp4"))
PYEOF
fi
"$PY" configs/depth_footage_data.py "$VIDEO" "$OUT"
