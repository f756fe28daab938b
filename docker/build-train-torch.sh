#!/usr/bin/env bash
# Build trainyard/train-torch:0.1 (federated trains at Docker stations) without any image registry.
#
#   bash docker/build-train-torch.sh                          # skip when the image exists
#   TRAINYARD_REBUILD=1 bash docker/build-train-torch.sh
#   TRAINYARD_TORCH=cuda bash docker/build-train-torch.sh     # -> trainyard/train-torch-cuda:0.1
#
# 1. docker/build-train-base.sh provides the train base image;
# 2. `pip download` puts torch==2.13.0 (the CPU wheel by default; the CUDA build from PyPI with
#    TRAINYARD_TORCH=cuda), safetensors and their dependencies into a wheelhouse on the host;
# 3. `docker build -f docker/train-torch.Dockerfile` installs from it with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
VARIANT=${TRAINYARD_TORCH:-cpu}
BASE_IMAGE=${TRAINYARD_TRAIN_BASE_IMAGE:-trainyard/train-base:0.1}
case "$VARIANT" in
    cpu) IMAGE=${TRAINYARD_TRAIN_TORCH_IMAGE:-trainyard/train-torch:0.1}; TORCH="torch==2.13.0+cpu" ;;
    cuda) IMAGE=${TRAINYARD_TRAIN_TORCH_IMAGE:-trainyard/train-torch-cuda:0.1}; TORCH="torch==2.13.0" ;;
    *) echo "build-train-torch: TRAINYARD_TORCH must be cpu or cuda, not $VARIANT" >&2; exit 2 ;;
esac
START=$(date +%s)
say() { echo "build-train-torch [$(( $(date +%s) - START ))s]: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

bash docker/build-train-base.sh
if [ -z "${TRAINYARD_REBUILD:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    BASE_ID=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
    if [ "$(docker image inspect -f '{{index .Config.Labels "org.trainyard.base"}}' "$IMAGE")" = "$BASE_ID" ]; then
        say "$IMAGE exists on the current $BASE_IMAGE; nothing to do"
        exit 0
    fi
fi
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
mkdir -p "$CONTEXT/wheels"
say "pip download $TORCH safetensors -> wheelhouse (python 3.11, manylinux x86_64)"
"$PYTHON" -m pip download -q --dest "$CONTEXT/wheels" --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    "$TORCH" "safetensors>=0.4,<1" pip >"$CONTEXT/pip.log" 2>&1 \
    || { tail -n 20 "$CONTEXT/pip.log" >&2; fail "pip download failed"; }
# numpy comes from Debian in the base image: never a second copy
rm -f "$CONTEXT/wheels"/numpy-*.whl
say "docker build -f docker/train-torch.Dockerfile -> $IMAGE"
docker build -q --build-arg "BASE=$BASE_IMAGE" --label "org.trainyard.base=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")" \
    -f docker/train-torch.Dockerfile -t "$IMAGE" "$CONTEXT" >"$CONTEXT/build.log" 2>&1 \
    || { tail -n 30 "$CONTEXT/build.log" >&2; fail "docker build of $IMAGE failed"; }
docker run --rm --network none "$IMAGE" python3 -c \
    'import os, torch, safetensors.torch, trainkit; assert os.getuid() == 10001; print("torch", torch.__version__)' \
    >&2 || fail "$IMAGE does not import torch, safetensors and trainkit as uid 10001"
say "done: $IMAGE"
