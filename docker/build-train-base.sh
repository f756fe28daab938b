#!/usr/bin/env bash
# Build the train base image without any image registry.
#
#   bash docker/build-train-base.sh            # skip when the image exists
#   TRAINYARD_REBUILD=1 bash docker/build-train-base.sh
#
# 1. debootstrap a minimal Debian bookworm root file system with python3, numpy and
#    pydicom from deb.debian.org; the rootfs tarball is cached under
#    ${XDG_CACHE_HOME:-$HOME/.cache}/trainyard/ so reruns skip this step;
# 2. `docker import` it as trainyard/debian-python:bookworm;
# 3. `docker build -f docker/train-base.Dockerfile` on top of it: trainkit on the python
#    path, a non-root user (uid/gid 10001), WORKDIR /train.
#
# Needs root (debootstrap), a Docker engine (see docker/ensure-engine.sh) and access to a
# Debian mirror (TRAINYARD_DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -euo pipefail

cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${TRAINYARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-numpy,python3-pydicom
DEBIAN_IMAGE=${TRAINYARD_DEBIAN_IMAGE:-trainyard/debian-python:bookworm}
BASE_IMAGE=${TRAINYARD_TRAIN_BASE_IMAGE:-trainyard/train-base:0.1}
CACHE_DIR=${TRAINYARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trainyard}
ROOTFS_TAR=$CACHE_DIR/debian-python-$SUITE-$(dpkg --print-architecture 2>/dev/null || echo amd64).tar

START=$(date +%s)
say() { echo "build-train-base [$(( $(date +%s) - START ))s]: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker >/dev/null 2>&1 || fail "the docker CLI is missing; run docker/ensure-engine.sh first"
docker info >/dev/null 2>&1 || fail "no Docker engine answers; run docker/ensure-engine.sh first"

# The image carries the hash of the trainkit sources it was built with, so a changed
# trainkit rebuilds the (seconds-long) last step and nothing else.
TRAINKIT_HASH=$(find trainkit -name '*.py' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
LABEL=org.trainyard.trainkit-sha256
if [ -z "${TRAINYARD_REBUILD:-}" ] && image_exists "$BASE_IMAGE"; then
    current=$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$BASE_IMAGE" 2>/dev/null || true)
    if [ "$current" = "$TRAINKIT_HASH" ]; then
        say "$BASE_IMAGE exists and carries the current trainkit; nothing to do (TRAINYARD_REBUILD=1 forces a rebuild)"
        exit 0
    fi
    say "$BASE_IMAGE carries another trainkit; rebuilding its last step"
fi

if [ -n "${TRAINYARD_REBUILD:-}" ] || ! image_exists "$DEBIAN_IMAGE"; then
    if [ ! -s "$ROOTFS_TAR" ]; then
        [ "$(id -u)" -eq 0 ] || fail "debootstrap needs root (or put a rootfs tarball at $ROOTFS_TAR)"
        if ! command -v debootstrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
            say "installing debootstrap with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 \
                || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1; } \
                || true
        fi
        command -v debootstrap >/dev/null 2>&1 || fail "debootstrap is missing (apt-get install debootstrap)"
        mkdir -p "$CACHE_DIR"
        WORK=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
        trap 'rm -rf "$WORK"' EXIT
        say "debootstrap --variant=minbase $SUITE from $MIRROR (with $PACKAGES); log: $CACHE_DIR/debootstrap.log"
        if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK/rootfs" "$MIRROR" \
            >"$CACHE_DIR/debootstrap.log" 2>&1; then
            tail -n 20 "$CACHE_DIR/debootstrap.log" >&2 || true
            fail "debootstrap failed (is $MIRROR reachable?); see $CACHE_DIR/debootstrap.log"
        fi
        say "trimming apt lists, caches and docs"
        rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"* \
            "$WORK/rootfs/usr/share/doc/"* "$WORK/rootfs/usr/share/man/"* "$WORK/rootfs/usr/share/locale/"* \
            "$WORK/rootfs/var/log/"*.log
        say "packing the root file system into $ROOTFS_TAR"
        tar --numeric-owner -C "$WORK/rootfs" -cf "$ROOTFS_TAR.tmp" .
        mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
        rm -rf "$WORK"
        trap - EXIT
    else
        say "using the cached root file system $ROOTFS_TAR"
    fi
    say "docker import -> $DEBIAN_IMAGE"
    docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' \
        "$ROOTFS_TAR" "$DEBIAN_IMAGE" >/dev/null || fail "docker import of $ROOTFS_TAR failed"
else
    say "$DEBIAN_IMAGE exists; skipping debootstrap and import"
fi

say "docker build -f docker/train-base.Dockerfile -> $BASE_IMAGE"
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
# A tiny build context: only trainkit, never the caches or virtual environments of the repo.
mkdir -p "$CONTEXT/trainkit"
find trainkit -name '*.py' -exec cp --parents {} "$CONTEXT/" \;
docker build -q --build-arg "BASE=$DEBIAN_IMAGE" --label "$LABEL=$TRAINKIT_HASH" -f docker/train-base.Dockerfile -t "$BASE_IMAGE" "$CONTEXT" \
    >/dev/null || fail "docker build of $BASE_IMAGE failed"
# Drop the untagged base images that earlier trainkit versions left behind.
docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true

docker run --rm --network none "$BASE_IMAGE" python3 -c \
    'import numpy, pydicom, trainkit, os; assert os.getuid() == 10001; print("python", __import__("sys").version.split()[0], "numpy", numpy.__version__, "pydicom", pydicom.__version__)' \
    >&2 || fail "$BASE_IMAGE does not import numpy, pydicom and trainkit as uid 10001"
say "done: $BASE_IMAGE"
