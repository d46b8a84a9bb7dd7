#!/usr/bin/env bash
# Builds the container image krust:dev from this checkout's own binary, with no registry and
# no base image: the root filesystem is the krust binary, the shared libraries `ldd` says it
# needs, /etc/nsswitch.conf, /etc/passwd, /tmp and the data directory, imported with
# `docker import`. The image has no shell; its entrypoint is `krust container-start`, which
# reads KRUST_<KEY> / KAFKA_<KEY> environment variables (see README.md, "Run a cluster").
#
#   docker/build-image.sh                            # release build, image krust:dev
#   KRUST_IMAGE_PROFILE=debug docker/build-image.sh  # the debug binary (faster to build)
#   KRUST_IMAGE=krust:test docker/build-image.sh     # another image name
#   KRUST_IMAGE_BINARY=target/debug/krust ...        # this binary as it is, no cargo run
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${KRUST_IMAGE_PROFILE:-release}
image=${KRUST_IMAGE:-krust:dev}
target=${CARGO_TARGET_DIR:-target}

case "$profile" in
  release) build=(cargo build --release -p krust); bin="$target/release/krust" ;;
  debug) build=(cargo build -p krust); bin="$target/debug/krust" ;;
  *) echo "KRUST_IMAGE_PROFILE must be release or debug, not '$profile'" >&2; exit 2 ;;
esac
if [ -n "${KRUST_IMAGE_BINARY:-}" ]; then
  bin=$KRUST_IMAGE_BINARY
else
  "${build[@]}"
fi
[ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/krust-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/var/lib/krust/data"
chmod 1777 "$rootfs/tmp"
# Debug info is most of the binary's size; symbols stay, so backtraces still name functions.
if command -v strip >/dev/null; then
  strip --strip-debug -o "$rootfs/usr/bin/krust" "$bin"
else
  cp "$bin" "$rootfs/usr/bin/krust"
fi

# The dynamic loader and every library the binary links, at the paths ldd reports
# (symlinks resolved to the files they point at).
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "ldd found no libraries for $bin (a static binary needs none)" >&2; }
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done

# Name lookups (container hostnames from Docker's DNS) through /etc/hosts, then DNS.
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/usr/bin/krust\nnobody:x:65534:65534:nobody:/nonexistent:/usr/bin/krust\n' \
  >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
tar -C "$rootfs" --owner=0 --group=0 --numeric-owner -c . |
  docker import \
    --change 'ENTRYPOINT ["/usr/bin/krust"]' \
    --change 'CMD ["container-start"]' \
    --change 'ENV NO_COLOR=1' \
    --change 'EXPOSE 9092 9093 9644' \
    --change 'VOLUME /var/lib/krust' \
    --change 'WORKDIR /var/lib/krust' \
    --change "LABEL org.opencontainers.image.title=krust org.opencontainers.image.revision=$revision krust.profile=$profile" \
    --message "krust $revision ($profile)" \
    - "$image" >/dev/null
echo "built image $image from $bin ($profile, $revision)"
docker image ls "$image"
