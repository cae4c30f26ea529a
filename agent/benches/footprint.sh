#!/usr/bin/env bash
# Agent footprint: stripped release binary size, RSS idle (no model, no broker) and RSS with the
# ~1 MB fixture model loaded and serving. Reproduce: bash agent/benches/footprint.sh
# (PROFILE=dist for the size-optimized device build: fat LTO, one codegen unit, stripped).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --profile "${PROFILE:-release}" --locked -q -p edgefleet-agent
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cp "target/${PROFILE:-release}/edgefleet-agent" "$work/edgefleet-agent"
strip "$work/edgefleet-agent"
size=$(stat -c %s "$work/edgefleet-agent")
echo "stripped release binary: $size bytes ($(( size / 1024 / 1024 )) MiB)"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

start_agent() { # $1 = data dir
  "$work/edgefleet-agent" run --device-id bench --broker-url mqtt://127.0.0.1:9 \
    --data-dir "$1" --trust-store fixtures/packages/fixture.pub --api-listen 127.0.0.1:0 2>/dev/null &
  pid=$!
  for _ in $(seq 1 100); do [ -s "$1/api.addr" ] && break; sleep 0.05; done
  sleep 1
}

start_agent "$work/idle"
echo "RSS idle (no model, broker unreachable): $(rss_kib $pid) KiB"
kill -TERM $pid; wait $pid || true

# A data dir with the 1 MB model installed as the active generation.
gen="$work/loaded/models/vibration-mlp-wide/1-000000000000"
mkdir -p "$gen"
cp fixtures/models/vibration_mlp_wide.onnx "$gen/model.onnx"
printf '{"current":{"model":"vibration-mlp-wide","version_seq":1,"label":"1.0.0","package_id":"%064d","dir":"1-000000000000"},"previous":null}' 0 \
  > "$work/loaded/models/vibration-mlp-wide/active.json"
start_agent "$work/loaded"
api=$(cat "$work/loaded/api.addr")
echo "RSS with the 1 MB model loaded: $(rss_kib $pid) KiB"
body='{"inputs":[{"name":"features","shape":[1,8],"data":[0.1,0.8,-0.3,1.1,0.05,-0.6,0.9,0.3]}]}'
for _ in $(seq 1 200); do curl -s -o /dev/null -X POST -H 'content-type: application/json' -d "$body" "http://$api/v1/infer"; done
echo "RSS after 200 inferences through the API: $(rss_kib $pid) KiB"
kill -TERM $pid; wait $pid || true
