#!/usr/bin/env bash
# Node benchmark: 100 pods of one private image under `kubepull up` (real registry, real runc).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="$PWD/target/release/kubepull" cargo run --release --locked -q -p kubepull --example pod_bench
