#!/usr/bin/env bash
# Agent footprint: stripped binary size, RSS idle (no model, no broker) and RSS with the ~1 MB
# fixture model loaded and serving.
#
# Reproduce: bash agent/benches/footprint.sh
# By default it measures the device build: `--profile dist` (fat LTO, opt-level "s" except
# tract-core, tract-data and tract-linalg at 3, stripped), `--no-default-features` (no sled), a
# static non-PIE musl executable (.cargo/config.toml). x86_64 musl needs musl-gcc for ring: `apt-get install musl-tools` and
# `rustup target add x86_64-unknown-linux-musl`. Another build:
#   PROFILE=release TARGET=host FEATURES=default bash agent/benches/footprint.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${PROFILE:-dist}
target=${TARGET:-x86_64-unknown-linux-musl}
features=${FEATURES:-none}
args=(--profile "$profile" --locked -q -p edgefleet-agent)
[ "$features" = none ] && args+=(--no-default-features)
out="target/$profile"
if [ "$target" != host ]; then args+=(--target "$target"); out="target/$target/$profile"; fi
cargo build "${args[@]}"
echo "build: profile $profile, target $target, features $features"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$out/edgefleet-agent" "$work/edgefleet-agent"
strip "$work/edgefleet-agent"
size=$(stat -c %s "$work/edgefleet-agent")
echo "stripped binary: $size bytes ($(awk "BEGIN {printf \"%.1f\", $size / 1048576}") MiB)"
file -b "$work/edgefleet-agent" | cut -d, -f1-2,4

rss() { awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s %s KiB  ", $1, $2} END {print ""}' "/proc/$1/status"; }

start_agent() { # $1 = data dir
  "$work/edgefleet-agent" run --device-id bench --broker-url mqtt://127.0.0.1:9 \
    --data-dir "$1" --trust-store fixtures/packages/fixture.pub --api-listen 127.0.0.1:0 2>/dev/null &
  pid=$!
  for _ in $(seq 1 100); do [ -s "$1/api.addr" ] && break; sleep 0.05; done
  sleep 1
}

start_agent "$work/idle"
echo "idle (no model, broker unreachable): $(rss $pid)"
kill -TERM $pid; wait $pid || true

# A data dir with the 1 MB model installed as the active generation.
gen="$work/loaded/models/vibration-mlp-wide/1-000000000000"
mkdir -p "$gen"
cp fixtures/models/vibration_mlp_wide.onnx "$gen/model.onnx"
printf '{"current":{"model":"vibration-mlp-wide","version_seq":1,"label":"1.0.0","package_id":"%064d","dir":"1-000000000000"},"previous":null}' 0 \
  > "$work/loaded/models/vibration-mlp-wide/active.json"
start_agent "$work/loaded"
api=$(cat "$work/loaded/api.addr")
echo "1 MB model loaded: $(rss $pid)"
body='{"inputs":[{"name":"features","shape":[1,8],"data":[0.1,0.8,-0.3,1.1,0.05,-0.6,0.9,0.3]}]}'
for _ in $(seq 1 200); do curl -s -o /dev/null -X POST -H 'content-type: application/json' -d "$body" "http://$api/v1/infer"; done
echo "after 200 inferences through the API: $(rss $pid)"
curl -s "http://$api/v1/status" | head -c 400; echo
kill -TERM $pid; wait $pid || true
