#!/bin/sh
# Photographic textures for the synthetic depth scenes (spiritnet_tf/data/textures.py):
# the GIMP patterns of the Debian package gimp-data 2.10.34-1+deb12u10 (GPL-3+), converted
# to PNG in OUT (default data/textures) with OUT/SOURCES.json. Run from the repository
# root: `sh configs/depth_textures.sh [OUT]`. Only the package registry is needed
# (apt-get download; run `apt-get update` first on a fresh machine).
set -eu
PY=${PY:-.venv/bin/python}
OUT=${1:-data/textures}
SRC=${SRC:-data/src}
mkdir -p "$SRC"
DEB=$(ls "$SRC"/gimp-data_2.10.34-1+deb12u10_all.deb 2>/dev/null || true)
if [ -z "$DEB" ]; then
  (cd "$SRC" && apt-get download gimp-data=2.10.34-1+deb12u10)
  DEB="$SRC/gimp-data_2.10.34-1+deb12u10_all.deb"
fi
rm -rf "$SRC/gimp-data" && mkdir -p "$SRC/gimp-data"
dpkg-deb -x "$DEB" "$SRC/gimp-data"
"$PY" -m spiritnet_tf.data.textures "$SRC/gimp-data/usr/share/gimp/2.0/patterns" "$OUT"
