# A Trainyard station agent, built offline on the debootstrapped Debian image (no registry).
#
#   bash docker/build-service-images.sh
#
# The agent runs as the unprivileged user `station` (uid 10002), never as root: the entrypoint
# starts as root only to give `station` the group of the mounted Docker socket and its state
# folder, then drops to it with setpriv (no capabilities kept). Access to a rootful engine's
# socket is still host root in effect; hospitals that refuse that point DOCKER_HOST at a
# rootless engine or run the sandbox or Kubernetes executor (README: "A station without root").
# Bind-mount sources are host paths, so the station's state and data live at the same path
# inside and outside the container (see docker/compose.yaml).
ARG BASE=trainyard/debian-python:bookworm
FROM ${BASE}

ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TRAINYARD_STATION_EXECUTOR=docker

COPY wheels/ /tmp/wheels/
RUN python3 "$(ls /tmp/wheels/pip-*.whl)/pip" install --no-index --find-links /tmp/wheels \
        --break-system-packages --no-cache-dir --root-user-action=ignore "trainyard[fl]" \
    && rm -rf /tmp/wheels
RUN groupadd --gid 10002 station \
    && useradd --uid 10002 --gid 10002 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin station
COPY station-entrypoint.sh /usr/local/bin/trainyard-station
ENTRYPOINT ["sh", "/usr/local/bin/trainyard-station"]
