#!/bin/bash
# Full-epoch training speed of every aggregation, mvae beside MultiVae 1.0.3 (issue 19 item 5).
#
#   cargo build --release && PY=/work/venv-mv/bin/python DATA=../shared/data \
#     benches/reference/compare_multivae.sh [OUT_DIR]       # MVAE_BIN: another mvae binary
#
# PY is a Python with `pip install multivae==1.0.3` (it brings torch). Before every run it
# waits until no other mvae training, cargo or rustc runs (polling every 30 s, until WAIT_UNTIL,
# a `date` time, default 14:25 UTC; after that it stops waiting and says so). It runs ROUNDS (default 3) interleaved rounds of one epoch on the first
# LIMIT (default 12000) MNIST training images, 2 threads each:
#   ours poe, MultiVae MVAE, ours moe, MultiVae MMVAE, ours mopoe, MultiVae MoPoE,
#   ours mmvae-plus, MultiVae MMVAE+
# and prints a Markdown table of the median samples/s per row and the ratio ours / MultiVae.
# Every run's figures (with the load average after it) go to OUT_DIR/runs.jsonl.
# OMP_WAIT_POLICY (e.g. passive) is passed to the MultiVae runs if set: torch's OpenMP threads
# spin while they wait, and on this 2-core VM with other work running a 2-thread torch run
# slows down about 15x (77 against 1,286 samples/s with passive waiting, 13:21 UTC 2026-12-07).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${MVAE_BIN:-$HERE/../../target/release/mvae}
PY=${PY:-/work/venv-mv/bin/python}
DATA=${DATA:-$HERE/../../../shared/data}
LIMIT=${LIMIT:-12000}
ROUNDS=${ROUNDS:-3}
WAIT_UNTIL=${WAIT_UNTIL:-14:25}
OUT=${1:-/tmp/compare_multivae}
mkdir -p "$OUT"
LOG=$OUT/runs.jsonl
: > "$LOG"

busy() { # another mvae training or evaluation (any build), cargo or rustc
    pgrep -f "$BIN" > /dev/null || pgrep -f 'mvae[^ /]* (train|eval)' > /dev/null \
        || pgrep -x cargo > /dev/null || pgrep rustc > /dev/null
}
deadline=$(date -u -d "$WAIT_UNTIL" +%s)
late=0
wait_quiet() { # before every run: a build or training that starts mid-round stalls torch's threads
    while [ $late = 0 ] && busy; do
        if [ "$(date -u +%s)" -ge "$deadline" ]; then
            late=1
            echo "# still busy at $(date -u +%T) UTC: measuring anyway" >&2
            echo "{\"note\":\"busy, measuring anyway\",\"time\":\"$(date -u +%T)\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$LOG"
            break
        fi
        sleep 30
    done
}
wait_quiet
echo "# start $(date -u +%FT%T) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

record() { # impl aggregation json
    local load
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    python3 -c '
import json, sys
j = json.loads(sys.argv[4])
if "samples_per_second" not in j:
    j["samples_per_second"] = j["train_samples"] / j["train_seconds"]
print(json.dumps({"round": int(sys.argv[1]), "impl": sys.argv[2], "aggregation": sys.argv[3],
                  "samples_per_second": j["samples_per_second"], "loss": j["loss"],
                  "load_after": sys.argv[5], "busy": sys.argv[6] == "1"}))
' "$ROUND" "$1" "$2" "$3" "$load" "$(busy && echo 1 || echo 0)" >> "$LOG"
    tail -1 "$LOG" >&2
}
ours() {
    local j
    wait_quiet
    j=$("$BIN" train --dataset mnist --data "$DATA" --aggregation "$1" --epochs 1 \
        --limit "$LIMIT" --test-limit 1000 --seed "$ROUND" --no-pictures --json --force \
        --out "$OUT/ours-$1" 2> "$OUT/ours-$1.err") || { echo "ours $1 failed" >&2; return; }
    record mvae "$1" "$j"
}
theirs() {
    local j
    wait_quiet
    j=$("$PY" "$HERE/multivae_mnist.py" --data "$DATA" --model "$2" --epochs 1 \
        --limit "$LIMIT" --seed "$ROUND" --threads 2 2> "$OUT/multivae-$2.err") \
        || { echo "MultiVae $2 failed" >&2; return; }
    record multivae "$1" "$j"
}

for ROUND in $(seq 1 "$ROUNDS"); do
    ours poe;        theirs poe mvae
    ours moe;        theirs moe mmvae
    ours mopoe;      theirs mopoe mopoe
    ours mmvae-plus; theirs mmvae-plus mmvae-plus
done
echo "# end $(date -u +%FT%T) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$LOG" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"impl"' in l]
names = {"poe": "MVAE", "moe": "MMVAE, K = 1", "mopoe": "MoPoE", "mmvae-plus": "MMVAE+, K = 1"}
print("| aggregation (ours / MultiVae) | mvae samples/s, runs | median | MultiVae samples/s, runs | median | ratio | goal 1.5x |")
print("|---|---|---|---|---|---|---|")
for agg, name in names.items():
    o = [r["samples_per_second"] for r in rows if r["impl"] == "mvae" and r["aggregation"] == agg]
    t = [r["samples_per_second"] for r in rows if r["impl"] == "multivae" and r["aggregation"] == agg]
    if not o or not t:
        continue
    mo, mt = statistics.median(o), statistics.median(t)
    f = lambda v: " / ".join(f"{x:,.0f}" for x in v)
    print(f"| {agg} / {name} | {f(o)} | {mo:,.0f} | {f(t)} | {mt:,.0f} | {mo / mt:.2f}x | {'met' if mo / mt >= 1.5 else 'not met'} |")
EOF
