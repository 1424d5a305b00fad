#!/usr/bin/env bash
# oneDNN 3.2, CTranslate2's CPU backend on CPUs that are not Intel's (MKL's int8 is slow there:
# README, "Transcription on an AMD CPU"), unpacked from Intel's PyPI wheels into DIR, which the
# build then names as ONEDNN_ROOT (onednn/build.rs):
#
#   scripts/onednn.sh DIR      (scripts/tools.sh: a cache; the container builds: /opt/onednn)
#
# The GNU OpenMP build: it needs only system libraries (libgomp1 at run time), and its OpenMP
# calls resolve to the Intel OpenMP runtime linked into the binaries (libiomp5 implements GNU's
# interface; the binaries export it, onednn/rpath.rs), so a process keeps one thread pool. A
# shared library, because oneDNN built from source (crates.io's onednn-src) is some 1,150 C++
# files: 13 compiled in 2 minutes here, on 2 cores shared with another build.
# Checked by sha256; DIR/.complete marks a finished unpack. Needs python3 with pip.
set -euo pipefail
dir="${1:?usage: scripts/onednn.sh DIR}"
[ -f "$dir/.complete" ] && exit 0
echo "== installing oneDNN 3.2.0 (GNU OpenMP build, from PyPI) into $dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/requirements.txt" <<'REQ'
onednn-cpu-gomp==2023.2.0 --hash=sha256:2f22a54d6a890ed14bfa185d42a4be65d8b5b1df85dc1f0f3a9abe31620416fb
onednn-devel-cpu-gomp==2023.2.0 --hash=sha256:9763c69e8c907e119056bd52ad918ca84ac9ba939d130a99dfa95ccca3e5e284
REQ
python3 -m pip download -q --no-deps --require-hashes --only-binary :all: \
  --disable-pip-version-check -r "$tmp/requirements.txt" -d "$tmp/wheels"
for w in "$tmp"/wheels/*.whl; do (cd "$tmp" && python3 -m zipfile -e "$w" x); done
rm -rf "$dir"
mkdir -p "$dir/lib"
cp -r "$tmp"/x/onednn_devel_cpu_gomp-2023.2.0.data/data/include "$dir/"
cp "$tmp"/x/onednn_cpu_gomp-2023.2.0.data/data/lib/libdnnl.so.3.2 "$dir/lib/"
ln -s libdnnl.so.3.2 "$dir/lib/libdnnl.so.3"
ln -s libdnnl.so.3 "$dir/lib/libdnnl.so"
if [ ! -f "$dir/include/oneapi/dnnl/dnnl.hpp" ]; then
  echo "the oneDNN wheels lacked oneapi/dnnl/dnnl.hpp" >&2
  exit 1
fi
touch "$dir/.complete"
