# The image federated trains run in at a Docker station: the train base image plus PyTorch and
# safetensors, installed from a wheelhouse made on the host (nothing is downloaded in the build).
#
#   bash docker/build-train-torch.sh            # CPU (torch 2.13.0+cpu), what CI builds
#   TRAINYARD_TORCH=cuda bash docker/build-train-torch.sh   # GPU stations: the CUDA build of torch
#
# The CUDA variant bundles the CUDA runtime libraries inside torch's wheels (nvidia-* packages,
# several GB); the host needs only the NVIDIA driver and the NVIDIA Container Toolkit, and the
# station lends GPUs with `trainyard station run --gpus N`.
ARG BASE=trainyard/train-base:0.1
FROM ${BASE}

USER root
COPY wheels/ /tmp/wheels/
RUN python3 "$(ls /tmp/wheels/pip-*.whl)/pip" install --no-index --find-links /tmp/wheels \
        --break-system-packages --no-cache-dir --root-user-action=ignore --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && python3 -c "import torch, safetensors; print('torch', torch.__version__)"
USER 10001:10001
