#!/usr/bin/env bash
# The project's run command (README: "Run"): builds kubepull and walks through the offline
# commands on the manifests in examples/. Needs only the Rust toolchain of this machine.
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

cargo build --release --locked -q -p kubepull || exit 1
KP=target/release/kubepull
export PATH="$PWD/target/release:$PATH"

step "kubepull create secret docker-registry regcred --docker-server=registry.example.com --docker-username=alice --docker-password-stdin -n team-a --dry-run=client -o yaml"
printf 's3cret\n' | $KP create secret docker-registry regcred --docker-server=registry.example.com \
  --docker-username=alice --docker-password-stdin -n team-a --dry-run=client -o yaml

step "kubepull lint examples/good.yaml"
$KP lint examples/good.yaml; echo "(exit $?)"

step "kubepull lint examples/broken.yaml"
$KP lint examples/broken.yaml; echo "(exit $?)"

step "kubepull creds registry.example.com/team-a/web:1.4.2 --pull-secret examples/good.yaml"
$KP creds registry.example.com/team-a/web:1.4.2 --pull-secret examples/good.yaml; echo "(exit $?)"

step "kubepull creds registry.example.com/team-b/api:v1 --pull-secret examples/broken.yaml"
$KP creds registry.example.com/team-b/api:v1 --pull-secret examples/broken.yaml; echo "(exit $?)"
exit 0
