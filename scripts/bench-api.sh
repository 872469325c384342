#!/usr/bin/env bash
# API server benchmark: start time, RSS, create throughput and p99, watch latency; embedded redb
# and etcd (when etcd-server is installed) with etcd's own put rate at the same concurrency beside it.
# One run, this machine. The build and the binary use CARGO_TARGET_DIR when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/kubepull" cargo run --release --locked -q -p kubepull --example api_bench
