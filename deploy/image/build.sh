#!/usr/bin/env bash
# Builds the wcached image with no registry, from Debian's own packages: mmdebstrap makes a
# minimal bookworm root file system holding wcached's runtime libraries and the release binary,
# and podman imports it as localhost/wcached:VERSION (the tag deploy/kubernetes/ uses).
#
#   deploy/image/build.sh [--check]
#
# --check then runs the image and reads /healthz: with podman where this machine lets
# containers run; where it does not (podman says why, and that is printed), the image's own
# root file system runs the binary under chroot instead, which proves the libraries are right.
# For a machine with a registry, deploy/image/Containerfile builds the same image.
set -euo pipefail
cd "$(dirname "$0")/../.."
check=0
[ "${1:-}" = --check ] && check=1
version=$(sed -n "s/^  version : '\(.*\)',$/\1/p" meson.build)
tag=localhost/wcached:$version

.ci/install-missing --only gcc libc6-dev meson ninja-build pkg-config libmicrohttpd-dev \
    libjansson-dev libcurl4-openssl-dev uthash-dev mmdebstrap podman uidmap curl
echo "== building (build/release)"
[ -f build/release/build.ninja ] || meson setup build/release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build/release >/dev/null

tmp=$(mktemp -d /tmp/wcached-image.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "== making the root file system (mmdebstrap, bookworm)"
mmdebstrap --quiet --variant=essential \
    --include=libmicrohttpd12,libjansson4,libcurl4,ca-certificates \
    --customize-hook='copy-in build/release/daemon/wcached /usr/local/bin' \
    bookworm "$tmp/rootfs.tar"
echo "== importing it as $tag"
podman import --quiet \
    --change 'ENTRYPOINT ["/usr/local/bin/wcached"]' \
    --change 'USER 65532:65532' \
    --change 'ENV WCACHED_LISTEN=0.0.0.0:8080' \
    --change 'EXPOSE 8080' \
    "$tmp/rootfs.tar" "$tag" >/dev/null
echo "== built $tag ($(du -h "$tmp/rootfs.tar" | cut -f1) uncompressed)"
[ "$check" = 1 ] || exit 0

port=$((20000 + RANDOM % 10000))
healthz() {
    for _ in $(seq 50); do
        curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
env_args=(-e "WCACHED_LISTEN=127.0.0.1:$port" -e "WCACHED_ETCD_ENDPOINTS=http://127.0.0.1:1")
if out=$(podman run -d --rm --name "wcached-check-$port" --network host "${env_args[@]}" "$tag" 2>&1); then
    trap 'podman rm -f "wcached-check-$port" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
    healthz && echo " <- /healthz of the image, run by podman" && exit 0
    echo "the image runs but /healthz did not answer" >&2
    exit 1
fi
echo "podman cannot run containers here: $out"
echo "== running the image's root file system under chroot instead"
mkdir "$tmp/root"
tar -xf "$tmp/rootfs.tar" -C "$tmp/root"
chroot "$tmp/root" /usr/local/bin/wcached --listen "127.0.0.1:$port" \
    --etcd-endpoints http://127.0.0.1:1 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
healthz && echo " <- /healthz of the image's binary and libraries, under chroot" && exit 0
echo "the image's binary did not answer /healthz" >&2
exit 1
