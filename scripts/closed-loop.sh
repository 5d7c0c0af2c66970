#!/bin/bash
# The feature-log loop end to end on a small world (docs/offline.md, "Training on logged rows"):
#  1. a 1-node cluster serves model A with every request's rows logged; make online-eval plays the
#     world's users against it and logs their events;
#  2. train-logged retrains the ranker on those rows and publishes model B (same towers);
#  3. fresh clusters serve A and B in turn to the online evaluation with another seed (held-out users,
#     contexts and responses); the served arm's figures of both are printed.
# Usage: scripts/closed-loop.sh [out-dir] [world-dir] [requests] [eval-seed]. Needs `make build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-run/closed-loop}
WORLD=${2:-data/worlds/local-2000v-500u-3d-s1}
REQUESTS=${3:-3000}
SEED=${4:-2}
WORLD_NAME=$(basename "$WORLD")
A=$(ls -d "models/$WORLD_NAME"-* 2>/dev/null | head -1 || true)
[ -n "$A" ] || { echo "no model models/$WORLD_NAME-*: run 'make run ARGS=\"--items 2000 --users 500 --days 3 --exit\"' once to build the world and its model" >&2; exit 2; }
PORT=50090
rm -rf "$OUT"; mkdir -p "$OUT"

CLUSTER_PID=
serve() { # serve <model> <run-dir> <log>: starts a cluster in the background, waits until it serves
  node dist/cluster/local/main.js --world "$WORLD" --models "$1" --nodes 1 --port $PORT --run-dir "$2" --set coordinator.featureLog.sampleRate=1 > "$3" 2>&1 &
  CLUSTER_PID=$!
  for _ in $(seq 1 120); do grep -q "serving on" "$3" && return 0; sleep 2; done
  echo "cluster did not start: see $3" >&2; exit 1
}
stop() { # Ctrl-C to the launcher stops its nodes and NATS; wait until it has
  kill -INT "$CLUSTER_PID" 2>/dev/null || true
  wait "$CLUSTER_PID" 2>/dev/null || true
}
trap 'stop' EXIT
evaluate() { # evaluate <seed> <out.json>
  node dist/loadtest/online-eval.js --target 127.0.0.1:$PORT --world "$WORLD" --requests "$REQUESTS" --rate 40 --log-events --seed "$1" --out "$2" > "$2.log" 2>&1
}

serve "$A" "$OUT/run-log" "$OUT/log-cluster.txt"
NATS=$(grep -o "nats://127.0.0.1:[0-9]*" "$OUT/log-cluster.txt" | head -1)
evaluate 1 "$OUT/logged-run.json"
sleep 12 # past the wait window below
node dist/offline/cli.js train-logged --nats "$NATS" --cluster local --from-model "$A" --wait-ms 10000 --out "$OUT/models" | tee "$OUT/train-logged.txt"
stop
B=$(ls -d "$OUT"/models/*-logged-*)
for arm in A B; do
  M=$A; [ $arm = B ] && M=$B
  serve "$M" "$OUT/run-$arm" "$OUT/cluster-$arm.txt"
  evaluate "$SEED" "$OUT/eval-$arm.json"
  stop
done
node -e '
const [a, b] = process.argv.slice(1).map((f) => require(require("path").resolve(f)).arms.served.metrics);
const row = (name, m) => `${name}  watch s/request ${m.watchSecondsPerRequest.value.toFixed(1)} [${m.watchSecondsPerRequest.lo.toFixed(1)}, ${m.watchSecondsPerRequest.hi.toFixed(1)}]  CTR ${m.ctr.value.toFixed(3)} [${m.ctr.lo.toFixed(3)}, ${m.ctr.hi.toFixed(3)}]`;
console.log(row("A (serving)   ", a)); console.log(row("B (train-logged)", b));' "$OUT/eval-A.json" "$OUT/eval-B.json"
