#!/usr/bin/env bash
# `kubepull operator` benchmark: 200 namespaces / 1,000 unrelated Secrets and 1,000 / 10,000 on a
# `kubepull server`: ClusterPullSecret → every copy, rotation → every copy, webhook latency and
# what it adds to pod creates, the operator's peak RSS. One run, this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="$PWD/target/release/kubepull" cargo run --release --locked -q -p kubepull --example operator_bench
