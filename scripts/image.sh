#!/usr/bin/env bash
# Builds a minimal OCI image of kubepull (the release binary, stripped, and the shared libraries
# it loads; nothing else but /etc/passwd, /etc/group and /tmp) and pushes it with `kubepull push`.
#
#   scripts/image.sh REF [kubepull push flags...]
#
#   REF                     where to push, e.g. registry.example:5000/kubepull:0.1
#   push flags              --docker-config FILE, --secret FILE, --hosts-dir DIR, -q ...
#   KUBEPULL_BIN=PATH       use this binary instead of building target/release/kubepull
#   OUT=DIR                 keep the OCI image layout in DIR (default: a temporary directory)
#
# The image runs as user 65532 (`nonroot`) with `kubepull` as its entrypoint, which is what
# `kubepull operator manifests --image REF` expects. The layer is reproducible: same binary,
# same libraries, same digest.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
ref=$1
shift
cd "$(dirname "$0")/.."
if [ -z "${KUBEPULL_BIN:-}" ]; then
  cargo build --release --locked -q -p kubepull
  KUBEPULL_BIN="$PWD/target/release/kubepull"
fi
[ -x "$KUBEPULL_BIN" ] || { echo "error: KUBEPULL_BIN=$KUBEPULL_BIN is not an executable" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${OUT:-$work/layout}
root=$work/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
if command -v strip >/dev/null; then
  strip -o "$root/usr/local/bin/kubepull" "$KUBEPULL_BIN"
else
  cp "$KUBEPULL_BIN" "$root/usr/local/bin/kubepull"
fi
chmod 0755 "$root/usr/local/bin/kubepull"
# every shared object the binary loads, at the path the loader looks for it (the interpreter too)
ldd "$KUBEPULL_BIN" | awk '/=> \// {print $3} /^\t\// {print $1}' | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac

(cd "$root" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -cf "$work/layer.tar" ./*)
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -6 <"$work/layer.tar" >"$work/layer.tar.gz"

mkdir -p "$out/blobs/sha256"
put() { # put FILE -> prints "DIGEST SIZE" and stores the blob
  local d s
  d=$(sha256sum "$1" | cut -d' ' -f1)
  s=$(stat -c %s "$1")
  cp "$1" "$out/blobs/sha256/$d"
  echo "$d $s"
}
read -r layer_d layer_s < <(put "$work/layer.tar.gz")
cat >"$work/config.json" <<EOF
{"architecture":"$arch","os":"linux","config":{"User":"65532:65532","Entrypoint":["/usr/local/bin/kubepull"],"Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created_by":"scripts/image.sh"}]}
EOF
read -r config_d config_s < <(put "$work/config.json")
cat >"$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_d","size":$config_s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_d","size":$layer_s}]}
EOF
read -r manifest_d manifest_s < <(put "$work/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
cat >"$out/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_d","size":$manifest_s,"platform":{"architecture":"$arch","os":"linux"}}]}
EOF
echo "image: sha256:$manifest_d (layer $((layer_s / 1048576)) MiB compressed)" >&2
"$KUBEPULL_BIN" push "$@" "$out" "$ref"
