#!/usr/bin/env bash
# The GPU check: voxfleet's transcription path (CTranslate2 float16 and int8_float16, candle f16;
# sequential, beam 5 and batched) on one NVIDIA GPU, printed as ×real time per stage with the
# GPU memory the process holds (voxfleet-gpu-check). Made for the lent GPU machines: no Rust and
# no network there, CUDA 13 with PyTorch's CUDA libraries, and at most 64 MiB carried per call.
#
#   scripts/gpu-check.sh pack         here: builds voxfleet-gpu-check with --features cuda (CUDA
#                                     13.0 from scripts/cuda.sh, kernels for sm_90: H100/H200),
#                                     packs it with tiny.en, Silero VAD and 137 s of espeak-ng
#                                     speech, compressed and cut into parts of at most 56 MiB
#                                     under .gpu/part-N (ignored by git)
#   scripts/gpu-check.sh build        here: only the CUDA build (scripts/test.sh runs it)
#   scripts/gpu-check.sh receive      there, one call per part but the last (carry .gpu/part-N):
#                                     says what has arrived; the parts stay between calls
#                                     while the machine is warm
#   scripts/gpu-check.sh run [ARGS]   there, carrying the last part: joins and checks the parts
#                                     (sha256), runs the check on cuda:0 (ARGS go to
#                                     voxfleet-gpu-check), and writes $OUT/gpu-check.{log,json}
#   scripts/gpu-check.sh cpu          here: packs a CPU build and runs the same flow on the CPU,
#                                     to check the script and the binary where no GPU is
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
gpu="$repo/.gpu"
part_size=$((56 * 1024 * 1024))

# Builds voxfleet-gpu-check, for CUDA when given `--features cuda` (the one place the GPU
# build's settings live; scripts/test.sh calls `build`).
build() {
  local features=("$@")
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/voxfleet/target}"
  export MKLROOT="$HOME/.cache/voxfleet/mkl-2026.2.0"
  export CMAKE_LIBRARY_PATH="$MKLROOT/lib"
  export ONEDNN_ROOT="$HOME/.cache/voxfleet/onednn-3.2.0"
  if [ ${#features[@]} -gt 0 ]; then
    CUDA_TOOLKIT_ROOT_DIR="$(scripts/cuda.sh)"
    export CUDA_TOOLKIT_ROOT_DIR CUDA_PATH="$CUDA_TOOLKIT_ROOT_DIR"
    export CUDA_ARCH_LIST="${CUDA_ARCH_LIST:-9.0}" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    export PATH="$CUDA_TOOLKIT_ROOT_DIR/bin:$PATH"
  fi
  echo "== building voxfleet-gpu-check ${features[*]:-(CPU)}"
  cargo build --locked -p voxfleet-benches --bin voxfleet-gpu-check "${features[@]}"
}

pack() {
  local models="${VOXFLEET_MODELS_DIR:-$HOME/.cache/voxfleet/models}"
  scripts/tools.sh
  build "$@"
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/check/models"
  strip -o "$stage/check/voxfleet-gpu-check" "$CARGO_TARGET_DIR/debug/voxfleet-gpu-check"
  # oneDNN (CTranslate2's CPU backend on CPUs that are not Intel's) and the GNU OpenMP library
  # it names, which the device machine may lack: the binary's recorded path to them is this
  # machine's.
  mkdir -p "$stage/check/lib"
  cp -L "$ONEDNN_ROOT/lib/libdnnl.so.3" "$(gcc -print-file-name=libgomp.so.1)" "$stage/check/lib/"
  # The model files the check loads, as `models fetch` laid them out, and ONNX Runtime.
  (cd "$models" && cp -r manifest.json whisper-tiny.en silero-vad onnxruntime "$stage/check/models/")
  speech "$stage/check"
  rm -rf "$gpu"
  mkdir -p "$gpu"
  echo "== packing (xz) and cutting into parts of at most $((part_size / 1024 / 1024)) MiB"
  tar -C "$stage" -cf - check | xz -T0 -6 > "$stage/check.tar.xz"
  (cd "$stage" && sha256sum check.tar.xz > "$gpu/SHA256")
  split -b "$part_size" -d -a 2 "$stage/check.tar.xz" "$stage/piece-"
  local n=0
  for piece in "$stage"/piece-*; do
    n=$((n + 1))
    mkdir -p "$gpu/part-$n"
    mv "$piece" "$gpu/part-$n/"
  done
  cp "$gpu/SHA256" "$gpu/part-$n/"
  rm -rf "$stage"
  du -sh "$gpu"/part-*
  echo "== $n part(s): carry .gpu/part-1 … .gpu/part-$n, one per call; 'receive' for all but the last, 'run' with the last"
}

# 137 s of espeak-ng speech (twelve sentences of voxfleet-bench-asr's recording, 1 s apart, twice) and its
# text, for the WER.
speech() {
  local dir="$1" tmp
  tmp=$(mktemp -d)
  local sentences=(
    "Speech recognition turns spoken language into written text."
    "A fleet of workers takes recordings from a queue and transcribes them."
    "Each job has a payload, a status, and a number of attempts."
    "When a worker stops answering, its lease runs out after a minute."
    "Another worker then picks the job up and starts it again."
    "The control plane shows every job and the worker that holds it."
    "Meetings, interviews, lectures and phone calls all become audio files."
    "The files arrive in many formats, from plain wave files to compressed music."
    "Before the model sees them, they are decoded and resampled to sixteen kilohertz."
    "The model listens to thirty seconds of audio at a time."
    "It writes down the words it hears, with a time stamp for every sentence."
    "Long recordings are cut into windows that follow one another."
  )
  sox -n -r 16000 -c 1 -b 16 "$tmp/gap.wav" trim 0 1.0
  local parts=() i=0
  for s in "${sentences[@]}"; do
    espeak-ng -v en-us -s 150 -w "$tmp/raw$i.wav" "$s"
    sox "$tmp/raw$i.wav" -r 16000 -c 1 -b 16 "$tmp/s$i.wav"
    parts+=("$tmp/gap.wav" "$tmp/s$i.wav")
    i=$((i + 1))
  done
  parts+=("$tmp/gap.wav")
  # Twice over: long enough for several 30 s windows and a full batch.
  sox "${parts[@]}" "${parts[@]}" "$dir/speech.wav"
  printf '%s ' "${sentences[@]}" "${sentences[@]}" > "$dir/speech.txt"
  rm -rf "$tmp"
}

receive() {
  echo "== parts here:"
  ls -la "$gpu"/part-* 2>/dev/null || echo "(none)"
}

run() {
  local out="${OUT:-$repo/.gpu/out}" work=/tmp/voxfleet-gpu-check
  mkdir -p "$out"
  [ -f "$gpu/SHA256" ] || cp "$(ls "$gpu"/part-*/SHA256 | head -1)" "$gpu/SHA256"
  rm -rf "$work"
  mkdir -p "$work"
  cat $(ls "$gpu"/part-*/piece-* | sort) > "$work/check.tar.xz"
  if ! (cd "$work" && sha256sum -c "$gpu/SHA256"); then
    echo "the parts do not join into the packed file: was every part carried (receive) first?" >&2
    receive >&2
    exit 1
  fi
  tar -C "$work" -xJf "$work/check.tar.xz"
  local device=cuda:0 libs=""
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv | tee "$out/nvidia-smi.csv"
    # cuBLAS, cuRAND, cuDNN and the CUDA runtime from PyTorch's wheels (the binary loads them
    # at run time).
    libs=$(python3 -c 'import glob, os, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(os.path.join(d, "**", "lib*.so*"), recursive=True)})))' 2>/dev/null || true)
  else
    device=cpu
  fi
  local args=("$@")
  [[ " $* " == *" --device "* ]] || args+=(--device "$device")
  set -o pipefail
  LD_LIBRARY_PATH="$work/check/lib${libs:+:$libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$work/check/voxfleet-gpu-check" --audio "$work/check/speech.wav" --text "$work/check/speech.txt" \
    --models-dir "$work/check/models" --json "$out/gpu-check.json" "${args[@]}" 2>&1 | tee "$out/gpu-check.log"
}

case "${1:-}" in
  build) build --features cuda ;;
  pack) pack --features cuda ;;
  receive) receive ;;
  run) shift; run "$@" ;;
  cpu)
    pack
    run --runs ct2:int8,candle:float32 --reps 1
    ;;
  *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
esac
