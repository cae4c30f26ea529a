#!/usr/bin/env bash
# The example pipeline as a user runs it, end to end, on a throwaway fleet manager:
#   simulator training data → dataset vibration-train@1 → pipeline vibration-retrain (prepare,
#   train with numpy, evaluate against current.onnx, package) → signed vibration-mlp@1 in the
#   registry → `edgefleet lineage` verifies the chain; a second run is served from the cache.
# Needs: python3 with numpy and onnx (pip install numpy==2.4.6 onnx==1.23.2).
# Usage: examples/pipelines/vibration/run.sh   (.ci/run runs it; exits non-zero on any failure)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cargo build --quiet --locked -p edgefleet -p edgefleet-sim --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
work=$(mktemp -d)
serve_pid=
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http=$(port); mqtt=$(port)
export EDGEFLEET_SERVER="http://127.0.0.1:$http" EDGEFLEET_OPERATOR=ml-engineer

# A key the fleet trusts, which the pipeline's package step signs with.
"$bin/edgefleet" keys generate --out "$work/keys" >/dev/null
EDGEFLEET_SERVE__PIPELINES__SIGNING_KEY="$work/keys/signing.key" \
  "$bin/edgefleet" serve --data-dir "$work/fleet" --trust-store "$work/keys/trust.toml" \
  --http-listen "127.0.0.1:$http" --mqtt-listen "127.0.0.1:$mqtt" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do "$bin/edgefleet" devices list >/dev/null 2>&1 && break; sleep 0.1; done

"$bin/edgefleet-sim" training-data --rows 5000 --seed 7 --out "$work/train.csv"
"$bin/edgefleet" dataset create vibration-train --from-csv "$work/train.csv"
# The same content gives the same dataset digest: a second create is the same version.
first=$("$bin/edgefleet" --json dataset show vibration-train | python3 -c 'import json,sys; print(json.load(sys.stdin)["versions"][-1]["digest"])')
"$bin/edgefleet" dataset create vibration-train --from-csv "$work/train.csv"
again=$("$bin/edgefleet" --json dataset show vibration-train | python3 -c 'import json,sys; d=json.load(sys.stdin)["versions"]; print(len(d), d[-1]["digest"])')
[ "$again" = "1 $first" ] || { echo "dataset digest not reproducible: $first vs $again"; exit 1; }

"$bin/edgefleet" pipeline run "$here/pipeline.yaml" --wait
"$bin/edgefleet" --json pipeline run vibration-retrain --wait > "$work/second.json"
python3 - "$work/second.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
assert run["status"] == "succeeded", run
steps = run["steps"]
assert all(s["cached"] for s in steps.values()), {k: s["cached"] for k, s in steps.items()}
took = run["finished_at_ms"] - run["created_at_ms"]
print(f"second run {run['id']}: every step cached, {took} ms")
PY
"$bin/edgefleet" pipeline runs --name vibration-retrain --metric accuracy --metric baseline.accuracy --metric train.train_accuracy
"$bin/edgefleet" lineage vibration-mlp@1
"$bin/edgefleet" lineage dataset vibration-train@1
