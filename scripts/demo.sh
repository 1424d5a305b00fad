#!/usr/bin/env bash
# The README's first command: starts Redis and PostgreSQL (installing them if absent), builds
# voxfleet, starts the control plane and one worker, submits a `diagnostic` job, follows its
# events until it succeeds, and prints the finished job. Stops what it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/voxfleet/target}"

scripts/services.sh
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) and run this again" >&2
  exit 1
fi
echo "== building voxfleet"
cargo build --workspace --bins --locked --quiet
bin="$CARGO_TARGET_DIR/debug"

work=$(mktemp -d /tmp/voxfleet-demo.XXXXXX)
export VOXFLEET_DATABASE_URL="${VOXFLEET_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/voxfleet_demo}"
export VOXFLEET_KEY_PREFIX="${VOXFLEET_KEY_PREFIX:-voxfleet-demo}"
export VOXFLEET_ADMIN_TOKEN="demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cp_pid=""; w_pid=""
cleanup() {
  [ -n "$w_pid" ] && kill -TERM "$w_pid" 2>/dev/null && wait "$w_pid" 2>/dev/null || true
  [ -n "$cp_pid" ] && kill -TERM "$cp_pid" 2>/dev/null && wait "$cp_pid" 2>/dev/null || true
  echo "(logs: $work)"
}
trap cleanup EXIT

echo "== starting the control plane"
"$bin/voxfleet-control-plane" --bind 127.0.0.1:0 --port-file "$work/port" >"$work/control-plane.log" 2>&1 &
cp_pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { cat "$work/control-plane.log"; exit 1; }
api="http://$(cat "$work/port")"
auth=(-H "Authorization: Bearer $VOXFLEET_ADMIN_TOKEN")

echo "== starting a worker (queues gpu,cpu; device cpu)"
"$bin/voxfleet-worker" --queues gpu,cpu --concurrency 2 --name demo-worker >"$work/worker.log" 2>&1 &
w_pid=$!
for _ in $(seq 1 100); do
  curl -fs "$api/readyz" >/dev/null && curl -fs "${auth[@]}" "$api/v1/workers" | grep -q demo-worker && break
  sleep 0.1
done

echo "== submitting a diagnostic job (2 s, 5 progress steps)"
job=$(curl -fsS "${auth[@]}" -H 'content-type: application/json' \
  -d '{"kind":"diagnostic","input":{"sleep_ms":2000,"steps":5}}' "$api/v1/jobs")
id=$(printf '%s' "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "job $id"

echo "== its events (server-sent events, until it finishes)"
curl -sN --max-time 60 "${auth[@]}" "$api/v1/jobs/$id/events" | grep '^data:' | sed 's/^data: /  /'

echo "== the finished job"
curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -m json.tool
status=$(curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
[ "$status" = succeeded ] || { echo "job ended $status" >&2; exit 1; }
echo "== the fleet"
curl -fsS "${auth[@]}" "$api/v1/workers" | python3 -m json.tool
echo "== done: job $id succeeded"
