#!/usr/bin/env bash
# Controller benchmark: a 3-replica Deployment's pods, idle CPU and RSS of `kubepull server` with
# 500 and with 10,000 unrelated pods stored. One run, this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/kubepull" cargo run --release --locked -q -p kubepull --example controller_bench
