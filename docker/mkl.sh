#!/bin/sh
# Intel MKL and Intel's OpenMP runtime for the image builds of CTranslate2 (docker/Dockerfile,
# docker/Dockerfile.cuda): static libraries and headers unpacked from PyPI's mkl-static,
# mkl-include and intel-openmp wheels into DIR, which the build then names as MKLROOT.
#
#   docker/mkl.sh DIR
#
# The wheels and their sha256 pins are read from scripts/tools.sh (the one place they live), so
# the images link the MKL the tests ran with. Needs python3 with pip.
set -eu
root="${1:?usage: docker/mkl.sh DIR}"
tools="$(dirname "$0")/../scripts/tools.sh"
tmp=$(mktemp -d)
grep -E '^(mkl-static|mkl-include|intel-openmp)==[^ ]+ --hash=sha256:[0-9a-f]{64}$' "$tools" \
  > "$tmp/requirements.txt"
if [ "$(wc -l < "$tmp/requirements.txt")" -ne 3 ]; then
  echo "expected the three pinned MKL wheels in $tools, found:" >&2
  cat "$tmp/requirements.txt" >&2
  exit 1
fi
python3 -m pip download -q --no-deps --require-hashes --only-binary :all: \
  --disable-pip-version-check -r "$tmp/requirements.txt" -d "$tmp/wheels"
python3 - "$tmp/wheels" "$root" <<'PY'
import os, shutil, sys, zipfile
wheels, root = sys.argv[1], sys.argv[2]
# What CTranslate2's CMake looks for with MKL (ILP64, Intel threading) and OpenMP INTEL.
libs = {"libmkl_core.a", "libmkl_intel_ilp64.a", "libmkl_intel_thread.a",
        "libmkl_sequential.a", "libiomp5.a"}
for wheel in sorted(os.listdir(wheels)):
    with zipfile.ZipFile(os.path.join(wheels, wheel)) as z:
        for name in z.namelist():
            # <package>.data/data/{lib,include}/...
            parts = name.split("/")
            if len(parts) < 4 or not parts[0].endswith(".data") or parts[1] != "data":
                continue
            if parts[2] == "lib" and len(parts) == 4 and parts[3] in libs:
                dest = os.path.join(root, "lib", parts[3])
            elif parts[2] == "include" and not name.endswith("/"):
                dest = os.path.join(root, "include", *parts[3:])
            else:
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(name) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
missing = sorted(l for l in libs if not os.path.exists(os.path.join(root, "lib", l)))
if missing or not os.path.exists(os.path.join(root, "include", "mkl.h")):
    sys.exit(f"the MKL wheels lacked {missing or 'mkl.h'}")
PY
rm -rf "$tmp"
echo "MKL unpacked into $root"
