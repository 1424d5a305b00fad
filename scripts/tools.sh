#!/usr/bin/env bash
# The command-line tools the tests and the demo use to make real audio: espeak-ng (speech),
# sox and ffmpeg (containers and codecs), and python3-venv; cmake, MKL and oneDNN for the build of
# CTranslate2; real voices for the held-out diarization test; Chromium and ChromeDriver for the
# dashboard's browser test. Installs the Debian packages when one is missing.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
missing=()
# ct2rs's build script compiles CTranslate2 with CMake.
command -v cmake >/dev/null || missing+=(cmake)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox libsox-fmt-all)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
# Virtual environments: the OpenAI SDK below, and the speaker-model converters that
# `voxfleet-worker models fetch` runs (numpy + onnx, pinned).
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
# The dashboard's browser test drives headless Chromium through WebDriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
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
# CTranslate2's CPU backend: Intel MKL and Intel's OpenMP runtime, as static libraries, from the
# PyPI wheels faster-whisper's CTranslate2 is built against (Intel's own download site is not
# reachable from every machine; PyPI is). Unpacked once into a cache, checked by sha256, and
# linked as .cache/mkl, where .cargo/config.toml points MKLROOT.
mkl="$HOME/.cache/voxfleet/mkl-2026.2.0"
if [ ! -f "$mkl/.complete" ]; then
  echo "== installing MKL 2026.2.0 and Intel OpenMP (static, from PyPI) into $mkl"
  tmp=$(mktemp -d)
  cat > "$tmp/requirements.txt" <<'REQ'
mkl-static==2026.2.0 --hash=sha256:090e439bf202b45579c75d2ba50ff7ead05752d553a06aba79c3ed2b5247921b
mkl-include==2026.2.0 --hash=sha256:889cc72057a1671fee1e9a8beb2fc4e0d222ba78c08b6d69584dae03fbec4822
intel-openmp==2026.2.0 --hash=sha256:2308a1a3e74718a9cd8cccf218c34d8cd80b43d3b89dfbb01b38dee205c50980
REQ
  python3 -m pip download -q --no-deps --require-hashes --only-binary :all: \
    -r "$tmp/requirements.txt" -d "$tmp/wheels"
  python3 - "$tmp" "$mkl" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, mkl = sys.argv[1], sys.argv[2]
libs = {"libmkl_core.a", "libmkl_intel_ilp64.a", "libmkl_intel_thread.a",
        "libmkl_sequential.a", "libiomp5.a"}
os.makedirs(os.path.join(mkl, "lib"), exist_ok=True)
os.makedirs(os.path.join(mkl, "include"), exist_ok=True)
for wheel in glob.glob(os.path.join(tmp, "wheels", "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            parts = name.split("/")
            if len(parts) < 4 or not parts[0].endswith(".data") or parts[1] != "data":
                continue
            if parts[2] == "lib" and len(parts) == 4 and parts[3] in libs:
                dest = os.path.join(mkl, "lib", parts[3])
            elif parts[2] == "include" and not name.endswith("/"):
                dest = os.path.join(mkl, "include", *parts[3:])
            else:
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(name) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
missing = [l for l in libs if not os.path.exists(os.path.join(mkl, "lib", l))]
if missing or not os.path.exists(os.path.join(mkl, "include", "mkl.h")):
    sys.exit(f"MKL wheels lacked {missing or 'mkl.h'}")
PY
  rm -rf "$tmp"
  touch "$mkl/.complete"
fi
# CTranslate2's backend on CPUs that are not Intel's: oneDNN, from PyPI (scripts/onednn.sh), linked
# as .cache/onednn, where .cargo/config.toml points ONEDNN_ROOT.
onednn="$HOME/.cache/voxfleet/onednn-3.2.0"
"$repo/scripts/onednn.sh" "$onednn"
# Real voices nobody tuned on, for the held-out diarization test
# (control-plane/tests/diarize_unseen.rs): six people's telephone prompts (8 kHz) from Debian's
# Asterisk sound packages, at the versions the test was written against. apt verifies the
# packages; only their sound folders are kept.
voices="$HOME/.cache/voxfleet/voices-asterisk"
if [ ! -f "$voices/.complete" ]; then
  echo "== fetching the held-out real voices (Debian Asterisk prompts) into $voices"
  tmp=$(mktemp -d)
  pkgs=(asterisk-core-sounds-fr-wav=1.6.1-1 asterisk-core-sounds-it-wav=1.6.1-1
        asterisk-core-sounds-ru-wav=1.6.1-1 "asterisk-prompt-it-menardi-wav=1:1.4.22+mm20110907-3.1"
        asterisk-prompt-fr-armelle=20070613-2.2 asterisk-prompt-es-co=0.20070403-2.1)
  if ! (cd "$tmp" && apt-get download -qq "${pkgs[@]}" >/dev/null 2>&1); then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    (cd "$tmp" && apt-get download -qq "${pkgs[@]}" >/dev/null)
  fi
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
  rm -rf "$voices"
  mkdir -p "$voices"
  cp -r "$tmp/x/usr/share/asterisk/sounds/." "$voices/"
  rm -rf "$tmp"
  touch "$voices/.complete"
fi
mkdir -p "$repo/.cache"
ln -sfn "$mkl" "$repo/.cache/mkl"
ln -sfn "$onednn" "$repo/.cache/onednn"
