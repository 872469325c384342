#!/usr/bin/env bash
# Pull benchmark: kubepull vs skopeo vs curl (the transfer floor), one run, this machine.
# KUBEPULL_BENCH_MIB (default 96), KUBEPULL_BENCH_LAYERS (3) and KUBEPULL_BENCH_RUNS (3) tune it;
# KUBEPULL_BENCH_GZIP_LEVEL (default 6, as docker, buildkit and umoci write layers) sets the layers'
# gzip level (1 here Huffman-codes incompressible data, which inflates several times slower);
# KUBEPULL_BENCH_PROFILE=1 adds a perf profile of one pull, one unpack and one pull that leaves the
# root filesystem ready (=only: just that). KUBEPULL_BENCH_BASELINE_BIN=PATH also times another
# kubepull build's pulls in the same run (KUBEPULL_BENCH_PULL_ONLY=1: only those and this build's,
# interleaved run by run, with each build's ready-rootfs / blobs-only ratio).
# KUBEPULL_BENCH_CONCURRENCY_SWEEP=1,2,3,4,6 times both pulls at each download concurrency,
# interleaved; KUBEPULL_BENCH_TIMINGS=1 prints one pull's phase timings (KUBEPULL_PULL_TIMINGS).
# KUBEPULL_BENCH_SERVE=SECONDS only serves the image that long, for pulls by hand (strace, perf).
set -euo pipefail
cd "$(dirname "$0")/.."
for p in docker-registry apache2-utils skopeo curl busybox-static time containerd linux-perf; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || \
    { [[ $(id -u) -eq 0 ]] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
cargo build --release --locked -q -p kubepull
KUBEPULL_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/kubepull" cargo run --release --locked -q -p kubepull --example pull_bench
