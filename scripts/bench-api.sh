#!/usr/bin/env bash
# API server benchmark: start time, RSS, create throughput and p99, watch latency; embedded redb
# and etcd (when etcd-server is installed) with etcd's own put rate at the same concurrency beside it,
# and the RBAC comparison (a RoleBinding-bound user vs the admin: server CPU and wall per request,
# interleaved rounds, median and spread of the per-round ratios).
# `scripts/bench-api.sh rbac`: only the RBAC comparison (KUBEPULL_BENCH_ROUNDS, KUBEPULL_BENCH_N,
# KUBEPULL_BENCH_BACKEND=redb|etcd, KUBEPULL_BENCH_PERF=PREFIX: see examples/api_bench.rs).
# `scripts/bench-api.sh etcd`: only the etcd create path, in interleaved rounds against etcd's own
# put and transaction rates, with CPU time per create for the server, etcd and the client
# (KUBEPULL_BENCH_PERF=FILE also records the server's phase with `perf record -a -g`).
# One run, this machine. The build and the binary use CARGO_TARGET_DIR when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
example=api_bench
case "${1:-}" in
  etcd) example=api_bench_etcd ;;
  rbac) export KUBEPULL_BENCH_ONLY=rbac ;;
esac
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/kubepull" cargo run --release --locked -q -p kubepull --example "$example"
