#!/usr/bin/env bash
# Makes local stand-ins for the two base images the Dockerfile names through its ARGs,
# which cannot be pulled here (no registry):
#   RUST_IMAGE    -> localhost/strom-rust:<rustc version>-bookworm
#                    Debian bookworm from debootstrap (gcc, libc6-dev, binutils), plus this
#                    machine's Rust toolchain laid out as the rust image lays it out
#                    (/usr/local/cargo, /usr/local/rustup) and this machine's CA bundle
#                    (the package registries are reached through it).
#   RUNTIME_IMAGE -> localhost/strom-distroless-cc:nonroot
#                    what distroless "cc-debian12:nonroot" holds: glibc, libgcc_s, libssl3,
#                    CA certificates, tzdata, /etc/passwd and /etc/group with nonroot
#                    (65532), /home/nonroot, /tmp; no shell, no package manager.
# Prints "RUST_IMAGE=... RUNTIME_IMAGE=..." as its last line. Idempotent: an image whose
# label strom.base-key matches the inputs (this script, the Containerfiles, the toolchain)
# is kept; the debootstrap root file system is cached under $STROM_IMAGE_CACHE.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${STROM_IMAGE_CACHE:?set STROM_IMAGE_CACHE to a cache directory}"
PODMAN=(podman --runtime runc)
MIRROR="${STROM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="gcc,libc6-dev,binutils,ca-certificates,tzdata,netbase,libssl3"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
SYSROOT="$(rustc --print sysroot)"
RUSTC_VERSION="$(rustc --version | awk '{print $2}')"

key_of() {
    { cat "$HERE/bases.sh" "$@"; echo "$PACKAGES $MIRROR"; rustc --version --verbose; } |
        sha256sum | cut -c1-16
}
has_image() { # has_image IMAGE KEY
    [ "$("${PODMAN[@]}" image inspect --format '{{index .Labels "strom.base-key"}}' "$1" 2>/dev/null || true)" = "$2" ]
}

# 1. Debian bookworm by debootstrap, imported as localhost/strom-debian:bookworm.
DEBIAN_IMAGE=localhost/strom-debian:bookworm
debian_key="$(key_of)"
if has_image "$DEBIAN_IMAGE" "$debian_key"; then
    echo "$DEBIAN_IMAGE up to date"
else
    rootfs="$CACHE/debootstrap-$debian_key"
    if [ ! -f "$rootfs/.strom-complete" ]; then
        rm -rf "$CACHE"/debootstrap-*
        mkdir -p "$CACHE"
        echo "debootstrap bookworm ($PACKAGES) into $rootfs"
        debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$MIRROR"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        touch "$rootfs/.strom-complete"
    fi
    echo "importing $rootfs as $DEBIAN_IMAGE"
    tar -C "$rootfs" --exclude=./.strom-complete -c . |
        "${PODMAN[@]}" import --change "LABEL strom.base-key=$debian_key" \
            --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
fi

# 2. The builder: bookworm plus this machine's toolchain (bin and lib; not its docs) and
# CA bundle. The build context is a small staging directory of hard links.
RUST_IMAGE="localhost/strom-rust:${RUSTC_VERSION}-bookworm"
rust_key="$(key_of "$HERE/rust.Containerfile")"
if has_image "$RUST_IMAGE" "$rust_key"; then
    echo "$RUST_IMAGE up to date"
else
    context="$CACHE/rust-context"
    rm -rf "$context"
    mkdir -p "$context/toolchain"
    cp -a "$SYSROOT/bin" "$SYSROOT/lib" "$context/toolchain/"
    cp -L /etc/ssl/certs/ca-certificates.crt "$context/ca-certificates.crt"
    echo "building $RUST_IMAGE from $SYSROOT"
    "${PODMAN[@]}" build --pull=never -q -f "$HERE/rust.Containerfile" \
        --build-arg BASE="$DEBIAN_IMAGE" --label strom.base-key="$rust_key" \
        -t "$RUST_IMAGE" "$context" >/dev/null
    rm -rf "$context"
fi

# 3. The runtime base, assembled from the bookworm image's own packages.
RUNTIME_IMAGE=localhost/strom-distroless-cc:nonroot
runtime_key="$(key_of "$HERE/distroless-cc.Containerfile")"
if has_image "$RUNTIME_IMAGE" "$runtime_key"; then
    echo "$RUNTIME_IMAGE up to date"
else
    echo "building $RUNTIME_IMAGE"
    "${PODMAN[@]}" build --pull=never -q -f "$HERE/distroless-cc.Containerfile" \
        --build-arg BASE="$DEBIAN_IMAGE" --label strom.base-key="$runtime_key" \
        -t "$RUNTIME_IMAGE" "$HERE" >/dev/null
fi

echo "RUST_IMAGE=$RUST_IMAGE RUNTIME_IMAGE=$RUNTIME_IMAGE"
