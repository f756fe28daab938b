#!/usr/bin/env bash
# Build the hub and station images without any image registry (not run in CI).
#
#   bash docker/build-service-images.sh
#
# 1. docker/build-train-base.sh provides trainyard/debian-python:bookworm (debootstrap +
#    docker import) and the train base image the stations run trains in;
# 2. `pip wheel` makes a wheelhouse of Trainyard and its dependencies under build/wheels
#    on this machine (PyPI or a local index is needed here, not inside the build);
# 3. `docker build` installs from that wheelhouse with --no-index: the builds are offline.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
START=$(date +%s)
say() { echo "build-service-images [$(( $(date +%s) - START ))s]: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

bash docker/build-train-base.sh
say "wheelhouse -> build/wheels"
mkdir -p build/wheels
"$PYTHON" -m pip wheel -q --wheel-dir build/wheels '.[fl]' pip >build/pip-wheel.log 2>&1 || fail "pip wheel failed; see build/pip-wheel.log"

CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
cp -r build/wheels "$CONTEXT/wheels"
cp docker/station-entrypoint.sh "$CONTEXT/"
for service in hub station; do
    say "docker build -f docker/$service.Dockerfile -> trainyard/$service:0.1"
    docker build -q -f "docker/$service.Dockerfile" -t "trainyard/$service:0.1" "$CONTEXT" >/dev/null \
        || fail "docker build of trainyard/$service:0.1 failed"
done
say "done: trainyard/hub:0.1 trainyard/station:0.1"
