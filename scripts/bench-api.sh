#!/usr/bin/env bash
# API server benchmark: start time, RSS, create throughput and p99, watch latency; embedded redb
# and etcd (when etcd-server is installed) with etcd's own put rate at the same concurrency beside it.
# `scripts/bench-api.sh etcd`: only the etcd create path, in interleaved rounds against etcd's own
# put and transaction rates, with CPU time per create for the server, etcd and the client
# (KUBEPULL_BENCH_PERF=FILE also records the server's phase with `perf record -a -g`).
# One run, this machine. The build and the binary use CARGO_TARGET_DIR when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
example=api_bench
if [ "${1:-}" = etcd ]; then
  example=api_bench_etcd
fi
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/kubepull" cargo run --release --locked -q -p kubepull --example "$example"
