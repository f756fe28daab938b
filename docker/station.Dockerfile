# A Trainyard station agent, built offline on the debootstrapped Debian image (no registry).
#
#   bash docker/build-service-images.sh
#
# The station runs trains with the Docker executor through the host's engine (the compose
# file mounts /var/run/docker.sock), so it runs as root: access to that socket is root on
# the host anyway. Bind-mount sources are host paths, so the station's state and data live
# at the same path inside and outside the container (see docker/compose.yaml).
ARG BASE=trainyard/debian-python:bookworm
FROM ${BASE}

ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TRAINYARD_STATION_EXECUTOR=docker

COPY wheels/ /tmp/wheels/
RUN python3 "$(ls /tmp/wheels/pip-*.whl)/pip" install --no-index --find-links /tmp/wheels \
        --break-system-packages --no-cache-dir --root-user-action=ignore trainyard \
    && rm -rf /tmp/wheels
COPY station-entrypoint.sh /usr/local/bin/trainyard-station
ENTRYPOINT ["sh", "/usr/local/bin/trainyard-station"]
