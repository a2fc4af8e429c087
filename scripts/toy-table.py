#!/usr/bin/env python3
"""The toy table of issue 24, for `docs/results.md` ("Imputing the cells of real tables").

Writes OUT/table.csv (300 rows: a and b standard normal, c = a + b + 0.1 * noise, each cell
blank with probability 0.2, a row never blank everywhere), OUT/probe.csv (200 new rows with c
blank) and OUT/probe_c.txt (their true c). Then scores a completed probe:

    python3 scripts/toy-table.py make OUT
    mvae train --manifest OUT/table.csv --latent 8 --epochs 200 --seed 0 --out OUT/run
    mvae impute --checkpoint OUT/run --manifest OUT/probe.csv --out OUT/filled.csv
    python3 scripts/toy-table.py score OUT OUT/filled.csv

Standard library only; seed 0.
"""
import csv
import math
import random
import sys
from pathlib import Path


def make(out: Path) -> None:
    rng = random.Random(0)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "table.csv", "w", newline="") as f:
        f.write("a,b,c\n")
        for _ in range(300):
            a, b = rng.gauss(0, 1), rng.gauss(0, 1)
            c = a + b + 0.1 * rng.gauss(0, 1)
            blank = [rng.random() < 0.2 for _ in range(3)]
            if all(blank):
                blank[rng.randrange(3)] = False
            cells = ["" if h else f"{v:.5f}" for v, h in zip((a, b, c), blank)]
            f.write(",".join(cells) + "\n")
    truth = []
    with open(out / "probe.csv", "w", newline="") as f:
        f.write("a,b,c\n")
        for _ in range(200):
            a, b = rng.gauss(0, 1), rng.gauss(0, 1)
            truth.append(a + b + 0.1 * rng.gauss(0, 1))
            f.write(f"{a:.5f},{b:.5f},\n")
    (out / "probe_c.txt").write_text("".join(f"{t!r}\n" for t in truth))


def score(out: Path, filled: Path) -> None:
    truth = [float(x) for x in (out / "probe_c.txt").read_text().split()]
    got = [float(r["c"]) for r in csv.DictReader(open(filled))]
    n = len(truth)
    mean = sum(truth) / n
    sd = math.sqrt(sum((t - mean) ** 2 for t in truth) / n)
    rmse = math.sqrt(sum((g - t) ** 2 for g, t in zip(got, truth)) / n)
    print(f"RMSE of c {rmse:.3f}; its deviation {sd:.3f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "score":
        score(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
