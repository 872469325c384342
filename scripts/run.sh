#!/usr/bin/env bash
# The project's run command (README: "Run"). On a fresh machine of this kind, as root, it installs
# what it needs (Debian: docker-registry, apache2-utils, runc, busybox-static), builds kubepull,
# runs the offline commands on examples/, then the seed walkthrough: a private registry, an image,
# `kubepull up`, and the real kubectl creating the pull secret and Deployments (Running; without
# the secret ErrImagePull then ImagePullBackOff; a placeholder image InvalidImageName).
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

APT_PACKAGES=(ca-certificates protobuf-compiler docker-registry apache2-utils runc busybox-static containernetworking-plugins iproute2 iptables)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
fi
command -v kubectl >/dev/null || { echo "kubectl 1.32 is required (preinstalled on these machines)" >&2; exit 1; }

cargo build --release --locked -q -p kubepull || exit 1
KP=target/release/kubepull
export PATH="$PWD/target/release:$PATH"

step "kubepull create secret docker-registry regcred --docker-server=registry.example.com --docker-username=alice --docker-password-stdin -n team-a --dry-run=client -o yaml"
printf 's3cret\n' | $KP create secret docker-registry regcred --docker-server=registry.example.com \
  --docker-username=alice --docker-password-stdin -n team-a --dry-run=client -o yaml

step "kubepull lint examples/broken.yaml"
$KP lint examples/broken.yaml; echo "(exit $?)"

step "kubepull creds registry.example.com/team-a/web:1.4.2 --pull-secret examples/good.yaml"
$KP creds registry.example.com/team-a/web:1.4.2 --pull-secret examples/good.yaml; echo "(exit $?)"

# The seed story against a real registry, API server, node agent and runc.
KUBEPULL_BIN="$PWD/$KP" cargo run --release --locked -q -p kubepull --example walkthrough
