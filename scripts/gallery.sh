#!/usr/bin/env bash
# Regenerates docs/gallery/: trains small runs with the `mvae` tool on the data in $MVAE_DATA
# (default: the sample bundled in examples/data) and copies the pictures it draws.
# Usage: bash scripts/gallery.sh   (about 5 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin mvae   # the dev profile is optimised (Cargo.toml)
MVAE=target/debug/mvae
OUT=target/gallery
rm -rf "$OUT" && mkdir -p "$OUT" docs/gallery
$MVAE train --dataset mnist --epochs 10 --anneal-epochs 2 --out "$OUT/mnist"
$MVAE train --dataset av-digits --epochs 10 --anneal-epochs 2 --out "$OUT/av"
$MVAE sample --checkpoint "$OUT/mnist" -n 32 --out "$OUT/sample"
for f in curves latent reconstructions label_to_image; do
  cp "$OUT/mnist/pictures/$f.png" "docs/gallery/mnist_$f.png"
done
for f in audio_to_image image_to_audio spectrograms; do
  cp "$OUT/av/pictures/$f.png" "docs/gallery/av_$f.png"
done
cp "$OUT/sample/image_grid.png" docs/gallery/mnist_prior_samples.png
echo "gallery written to docs/gallery/"
