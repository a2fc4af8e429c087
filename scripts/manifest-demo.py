#!/usr/bin/env python3
"""A manifest of your own kind of data, built from the shared data for the guide's walkthrough
("Your own data"): PNG digits, spoken digits (WAV) and the digit as a word.

    python3 scripts/manifest-demo.py DATA OUT [ROWS]

DATA holds mnist/ (IDX files) and fsdd/recordings/ (WAV files); OUT gets digits/*.png (MNIST
training images), the manifest OUT/digits.csv with columns `image,voice,digit,split` (each FSDD
clip beside an MNIST image of the same digit; FSDD's takes 0-4 are the test split, as the
data set's README says) and, to show blanks, every seventh row without its image and every
eleventh without its word. Standard library only; seed 0.
"""
import gzip
import random
import struct
import sys
import zlib
from pathlib import Path

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def idx(path: Path):
    data = gzip.open(path).read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        size = rows * cols
        return [data[16 + i * size: 16 + (i + 1) * size] for i in range(n)], (cols, rows)
    return list(data[8: 8 + n]), None


def png(path: Path, pixels: bytes, width: int, height: int) -> None:
    raw = b"".join(b"\x00" + pixels[r * width:(r + 1) * width] for r in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    limit = int(sys.argv[3]) if len(sys.argv) == 4 else None
    images, (w, h) = idx(data / "mnist" / "train-images-idx3-ubyte.gz")
    labels, _ = idx(data / "mnist" / "train-labels-idx1-ubyte.gz")
    by_digit = {d: [i for i, l in enumerate(labels) if l == d] for d in range(10)}
    rng = random.Random(0)
    for pool in by_digit.values():
        rng.shuffle(pool)
    clips = sorted((data / "fsdd" / "recordings").glob("*.wav"))
    rng.shuffle(clips)
    if limit:
        clips = clips[:limit]
    (out / "digits").mkdir(parents=True, exist_ok=True)
    used = {d: 0 for d in range(10)}
    lines = ["image,voice,digit,split"]
    for row, clip in enumerate(clips):
        digit, _speaker, take = clip.stem.split("_")
        d = int(digit)
        i = by_digit[d][used[d]]
        used[d] += 1
        name = f"digits/{i}.png"
        png(out / name, images[i], w, h)
        image = "" if row % 7 == 6 else name
        word = "" if row % 11 == 10 else WORDS[d]
        split = "test" if int(take) < 5 else "train"
        lines.append(f"{image},{clip.resolve()},{word},{split}")
    (out / "digits.csv").write_text("\n".join(lines) + "\n")
    print(f"{len(clips)} rows in {out / 'digits.csv'}")


if __name__ == "__main__":
    main()
