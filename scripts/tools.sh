#!/usr/bin/env bash
# The command-line tools the tests and the demo use to make real audio: espeak-ng (speech),
# sox and ffmpeg (containers and codecs). Installs the Debian packages when one is missing.
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox libsox-fmt-all)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
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
