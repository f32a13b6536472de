#!/bin/sh
# Fetches the film Big Buck Bunny ((c) Blender Foundation, CC BY 3.0; 1280x720, 24 fps,
# 9:56) from the package registry to $SRC/moviepy/bbb.mp4 (default data/src) and prints
# its path. Source: the source distribution of the PyPI package moviepy 2.1.2 (MIT
# licence) ships it as docs/_static/medias/getting_started/moviepy_10_minutes/
# moviepy_10_minutes.zip -> moviepy_10_minutes/resources/bbb.mp4. Only pip download is
# needed; nothing is imported from moviepy. Used by depth_footage_data.sh (depth) and
# default_weights_data.sh (motion).
set -eu
PY=${PY:-.venv/bin/python}
SRC=${SRC:-data/src}
VIDEO="$SRC/moviepy/bbb.mp4"
mkdir -p "$SRC/moviepy"
if [ ! -f "$VIDEO" ]; then
  if [ ! -f "$SRC/moviepy-2.1.2.tar.gz" ]; then
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --dest "$SRC" moviepy==2.1.2 >&2
  fi
  ZIP=moviepy-2.1.2/docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip
  "$PY" - "$SRC/moviepy-2.1.2.tar.gz" "$ZIP" "$VIDEO" <<'PYEOF'
import io, sys, tarfile, zipfile
with tarfile.open(sys.argv[1]) as tar:
    data = tar.extractfile(sys.argv[2]).read()
with zipfile.ZipFile(io.BytesIO(data)) as z, open(sys.argv[3] + ".partial", "wb") as f:
    f.write(z.read("moviepy_10_minutes/resources/bbb.mp4"))
PYEOF
  mv "$VIDEO.partial" "$VIDEO"
fi
echo "$VIDEO"
