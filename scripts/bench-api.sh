#!/usr/bin/env bash
# API server benchmark: start time, RSS, create throughput and p99, watch latency; embedded redb
# and etcd (when etcd-server is installed). One run, this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="$PWD/target/release/kubepull" cargo run --release --locked -q -p kubepull --example api_bench
