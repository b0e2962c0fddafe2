#!/usr/bin/env bash
# Builds the images a bakery publishes, from the static musl binaries:
#   vinit    ${IMAGE_PREFIX}vinit:latest       FROM scratch, only /sbin/vinit (for COPY --from)
#   debian   ${IMAGE_PREFIX}debian:bookworm    debootstrap minbase root filesystem + vinit
#   busybox  ${IMAGE_PREFIX}busybox:latest     scratch + Debian's busybox-static + vinit
#   demo     ${DEMO_TAG}                       scratch + vinit + the test probe (images/Dockerfile)
# Usage: images/build.sh [vinit|debian|busybox|demo ...]   (default: all of them)
# Environment: IMAGE_PREFIX (default "vinit/"), DEMO_TAG (default vinit-demo),
#   VINIT_BINARY (a vinit already built: skips `cargo build --release`; the
#   probe is taken from the same directory), DEBIAN_SUITE (default bookworm),
#   DEBIAN_MIRROR (default: the first Debian mirror in /etc/apt/sources.list*).
# The debootstrap root filesystem is cached as target/bakery/debian-SUITE-minbase.tar
# (needs root and debootstrap once; later runs only import it).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${IMAGE_PREFIX:-vinit/}
suite=${DEBIAN_SUITE:-bookworm}
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(vinit debian busybox demo)
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

if [ -n "${VINIT_BINARY:-}" ]; then
  bin=$(dirname "$VINIT_BINARY")
  vinit=$VINIT_BINARY
else
  cargo build --release --bins --quiet
  bin=target/x86_64-unknown-linux-musl/release
  vinit=$bin/vinit
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
build() { # TAG DIR [--build-arg ...]
  local tag=$1 dir=$2
  shift 2
  docker build --quiet --tag "$tag" --build-arg "VINIT_IMAGE=${prefix}vinit:latest" "$@" "$dir" >/dev/null
  echo "built $tag: $(docker image inspect --format '{{.Size}}' "$tag") bytes"
}

# vinit itself is needed by every other image.
mkdir -p "$context/vinit"
cp images/vinit/Dockerfile "$vinit" "$context/vinit/"
build "${prefix}vinit:latest" "$context/vinit"

if want demo; then
  mkdir -p "$context/demo"
  cp images/Dockerfile "$vinit" "$bin/vinit-probe" "$context/demo/"
  build "${DEMO_TAG:-vinit-demo}" "$context/demo"
fi

if want busybox; then
  busybox=$(command -v busybox || true)
  file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || {
    echo "images/build.sh: a static busybox is needed (apt-get install busybox-static)" >&2
    exit 1
  }
  mkdir -p "$context/busybox"
  cp images/busybox/Dockerfile images/busybox/passwd images/busybox/group "$context/busybox/"
  cp -L "$busybox" "$context/busybox/busybox"
  build "${prefix}busybox:latest" "$context/busybox"
fi

if want debian; then
  rootfs_image="${prefix}debian-rootfs:$suite-minbase"
  cache=target/bakery/debian-$suite-minbase.tar
  if [ ! -s "$cache" ]; then
    mirror=${DEBIAN_MIRROR:-$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -n1 | tr -d ' ' || true)}
    mirror=${mirror:-http://deb.debian.org/debian}
    mkdir -p target/bakery
    root=$(mktemp -d target/bakery/rootfs.XXXXXX)
    echo "debootstrap --variant=minbase $suite from $mirror (cached in $cache)"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >target/bakery/debootstrap.log 2>&1 || {
      tail -20 target/bakery/debootstrap.log >&2
      rm -rf "$root"
      exit 1
    }
    # What a published base does not need: downloaded packages, package
    # lists, documentation, and the machine identity of the build host.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
      "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
      "$root"/var/log/* "$root"/etc/machine-id "$root"/var/lib/dbus/machine-id
    : >"$root/etc/hostname"
    tar --numeric-owner -C "$root" -cf "$cache.partial" .
    mv "$cache.partial" "$cache"
    rm -rf "$root"
  fi
  docker import --message "debootstrap --variant=minbase $suite" "$cache" "$rootfs_image" >/dev/null
  build "${prefix}debian:$suite" images/debian --build-arg "ROOTFS=$rootfs_image"
fi
