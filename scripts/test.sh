#!/usr/bin/env bash
# The test command: formatting, lints (warnings are errors) and every test, against the real
# Redis and PostgreSQL (started or installed first if absent). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/voxfleet/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/services.sh
scripts/tools.sh
# CTranslate2's MKL (scripts/tools.sh installs it) by its absolute path: .cargo/config.toml's
# fallback names it through the checkout, and a clone elsewhere would rebuild CTranslate2.
export MKLROOT="$HOME/.cache/voxfleet/mkl-2026.2.0"
export CMAKE_LIBRARY_PATH="$MKLROOT/lib"
export ONEDNN_ROOT="$HOME/.cache/voxfleet/onednn-3.2.0"
export VOXFLEET_MODELS_DIR="${VOXFLEET_MODELS_DIR:-$HOME/.cache/voxfleet/models}"

echo "== import circles between files (scripts/checks/circles.py)"
python3 scripts/checks/circles.py --strict
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== CUDA build of voxfleet-gpu-check (compiled and linked only: no GPU here)"
# Before the CPU build, so the binaries left in the target folder are the CPU ones.
scripts/gpu-check.sh build
echo "== cargo build (binaries used by the end-to-end tests)"
cargo build --workspace --bins --locked
echo "== docker/ and docker/k8s/: schemas, hadolint, and every name and flag against the binaries"
python3 scripts/checks/manifests.py
echo "== model files (fetched once into $VOXFLEET_MODELS_DIR, verified every time)"
"$CARGO_TARGET_DIR/debug/voxfleet-worker" models fetch
# The multilingual model: translations, and the memory-budget test's second model.
"$CARGO_TARGET_DIR/debug/voxfleet-worker" models fetch --models whisper-base
echo "== cargo test"
cargo test --workspace --locked -- --test-threads "${VOXFLEET_TEST_THREADS:-4}"
echo "== all checks passed"
