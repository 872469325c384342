#!/usr/bin/env bash
# `kubepull doctor -A` benchmark: 500 and 2,000 pods on a `kubepull server`, the real registry;
# wall time, peak RSS, API reads, registry probes, manifest requests the registry saw, beside
# `kubectl get pods -A -o json`. One run, this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install -y time)" >&2; exit 1; }
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="$PWD/target/release/kubepull" cargo run --release --locked -q -p kubepull --example doctor_bench
