#!/usr/bin/env bash
# CUDA 13.0's compiler, headers and link stubs for the GPU build (`--features cuda`), from
# NVIDIA's PyPI wheels (no GPU and no CUDA package needed here): nvcc with cicc and ptxas, the
# CUDA runtime (static), CCCL (thrust, cub), cuBLAS's and cuRAND's headers, cuDNN's header and loader
# library. Unpacked once into a cache, every wheel checked by sha256, laid out as a toolkit
# root. Prints that root; `CUDA_TOOLKIT_ROOT_DIR=$(scripts/cuda.sh)`.
#
# 13.0 matches the GPU machines these builds run on (driver 580, PyTorch cu130): the binary
# loads cuBLAS, cuRAND, NVRTC, cuDNN and the driver from that machine at run time, so only cuDNN's
# small loader (libcudnn.so.9) and link stubs of the others (lib/stubs, made from the real
# libraries' symbols, or cuda.h's for the driver) are kept here.
set -euo pipefail
cuda="$HOME/.cache/voxfleet/cuda-13.0"
# .complete-r3: the layout of this script's third revision (link stubs); older caches are redone.
if [ ! -f "$cuda/.complete-r3" ]; then
  echo "== installing CUDA 13.0 (nvcc, runtime, CCCL, cuBLAS and cuDNN headers; PyPI wheels) into $cuda" >&2
  tmp=$(mktemp -d)
  cat > "$tmp/requirements.txt" <<'REQ'
nvidia-cuda-nvcc==13.0.88 --hash=sha256:56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03
nvidia-nvvm==13.0.88 --hash=sha256:c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0
nvidia-cuda-crt==13.0.88 --hash=sha256:2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cccl==13.0.85 --hash=sha256:e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649
nvidia-cublas==13.0.0.19 --hash=sha256:f6723af2e8e2600a11dc384037d90d9bf93070e346c24ef2e8f9001658c99896
nvidia-curand==10.4.0.35 --hash=sha256:1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc
nvidia-cuda-nvrtc==13.0.88 --hash=sha256:ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
nvidia-cudnn-cu13==9.13.0.50 --hash=sha256:2150b4850725d30653ec3e365f0732e3e2e3eb8633cf3bd2d3117628dea8b4f9
REQ
  python3 -m pip download -q --no-deps --require-hashes --only-binary :all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
    -r "$tmp/requirements.txt" -d "$tmp/wheels" >&2
  rm -rf "$cuda"
  python3 - "$tmp" "$cuda" <<'PY'
import glob, os, re, shutil, stat, subprocess, sys, zipfile
tmp, cuda = sys.argv[1], sys.argv[2]
# Libraries candle's cudarc links by name (`dynamic-linking`) that only the GPU machine needs at
# run time: link stubs with their sonames, as the CUDA toolkit's own lib/stubs.
STUBBED = ["libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13"]
for wheel in glob.glob(os.path.join(tmp, "wheels", "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            parts = info.filename.split("/")
            if info.is_dir() or len(parts) < 4 or parts[0] != "nvidia":
                continue
            if parts[1] == "cu13":
                rel = parts[2:]
                # The libraries the GPU machine has (cuBLAS, cuRAND, NVRTC) are replaced by
                # link stubs below: unpacked aside, read for their symbols, dropped.
                if rel[0] == "lib" and any(k in rel[-1] for k in ("cublas", "curand", "nvrtc")):
                    if rel[-1] in STUBBED:
                        real = os.path.join(tmp, "real", rel[-1])
                        os.makedirs(os.path.dirname(real), exist_ok=True)
                        with z.open(info) as src, open(real, "wb") as out:
                            shutil.copyfileobj(src, out)
                    continue
            elif parts[1] == "cudnn" and parts[2] == "include":
                rel = parts[2:]
            elif parts[1] == "cudnn" and parts[2:] == ["lib", "libcudnn.so.9"]:
                rel = parts[2:]
            else:
                continue
            dest = os.path.join(cuda, *rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            if rel[0] in ("bin", "nvvm") or (info.external_attr >> 16) & stat.S_IXUSR:
                os.chmod(dest, 0o755)
def stub(soname, symbols):
    stubs = os.path.join(cuda, "lib", "stubs")
    os.makedirs(stubs, exist_ok=True)
    src = os.path.join(tmp, soname + ".c")
    with open(src, "w") as f:
        for sym in sorted(symbols):
            f.write(f"void {sym}(void) {{}}\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", os.path.join(stubs, soname),
                    f"-Wl,-soname,{soname}", src], check=True)
    os.symlink(os.path.join("stubs", soname),
               os.path.join(cuda, "lib", soname.split(".so")[0] + ".so"))

for soname in STUBBED:
    out = subprocess.run(["nm", "-D", "--defined-only", "--format=posix",
                          os.path.join(tmp, "real", soname)],
                         check=True, capture_output=True, text=True).stdout
    stub(soname, {l.split()[0].split("@")[0] for l in out.splitlines()
                  if len(l.split()) >= 2 and l.split()[1] in "TW"})
# The driver library (libcuda.so.1) comes with the GPU machine's driver, not with a wheel: its
# stub exports every driver entry point cuda.h names, versioned names included.
header = open(os.path.join(cuda, "include", "cuda.h")).read()
names = set(re.findall(r"\b(cu[A-Z]\w*)\s*\(", header))
names |= set(re.findall(r"\b(cu[A-Z]\w*_v\d\w*)\b", header))
stub("libcuda.so.1", names)

for need in ["bin/nvcc", "nvvm/bin/cicc", "include/cuda_runtime.h", "include/cublas_v2.h",
             "include/cudnn.h", "include/curand_kernel.h", "include/cccl/thrust/version.h", "lib/libcudart_static.a",
             "lib/libcudnn.so.9", "lib/libcuda.so", "lib/libcublas.so"]:
    if not os.path.exists(os.path.join(cuda, need)):
        sys.exit(f"CUDA wheels lacked {need}")
PY
  # The layout nvcc.profile and CMake expect of a toolkit root.
  ln -s libcudnn.so.9 "$cuda/lib/libcudnn.so"
  ln -s libcudart.so.13 "$cuda/lib/libcudart.so"
  ln -s lib "$cuda/lib64"
  mkdir -p "$cuda/targets/x86_64-linux"
  ln -s ../../include "$cuda/targets/x86_64-linux/include"
  ln -s ../../lib "$cuda/targets/x86_64-linux/lib"
  rm -rf "$tmp"
  touch "$cuda/.complete-r3"
fi
echo "$cuda"
