#!/usr/bin/env bash
# Benchmarks (not timed tests): prints tables side by side with the peers, in one run.
#   1. `kubepull create secret docker-registry` vs `kubectl create secret docker-registry
#      --dry-run=client`, wall time per invocation
#   2. keyring lookups per second on a 100-entry keyring
# Usage: scripts/bench.sh [N]   (N = runs per command for the create-secret comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p kubepull
echo "## create secret docker-registry"
KUBEPULL_BIN=target/release/kubepull scripts/bench-create-secret.sh "${1:-200}"
echo
echo "## keyring"
cargo run --release --locked -q -p kubepull-core --example keyring_bench
