#!/usr/bin/env bash
# The command-line tools the tests and the demo use to make real audio: espeak-ng (speech),
# sox and ffmpeg (containers and codecs), and python3-venv. Installs the Debian packages when one is missing.
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox libsox-fmt-all)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
# Virtual environments: the OpenAI SDK below, and the speaker-model converters that
# `voxfleet-worker models fetch` runs (numpy + onnx, pinned).
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The official OpenAI Python SDK, for the compatibility test of /v1/audio/transcriptions.
venv="$HOME/.cache/voxfleet/venv-openai"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  echo "== installing the OpenAI Python SDK into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "openai==3.52.0"
fi
# An S3-protocol server over a local folder, for the S3 storage test (no MinIO package here).
if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "== installing s3s-fs 0.14.1 (cargo install)"
  cargo install --quiet s3s-fs@0.14.1 --locked --features binary
fi
