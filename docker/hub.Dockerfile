# The Trainyard hub, built offline on the debootstrapped Debian image (no registry).
#
#   bash docker/build-service-images.sh     # wheelhouse + this image + station.Dockerfile
#
# The build context is a temporary folder holding only build/wheels (a wheelhouse made on
# the host with `pip wheel`); nothing is downloaded during `docker build`.
ARG BASE=trainyard/debian-python:bookworm
FROM ${BASE}

ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TRAINYARD_HUB_STATE_DIR=/var/lib/trainyard/hub

COPY wheels/ /tmp/wheels/
RUN python3 "$(ls /tmp/wheels/pip-*.whl)/pip" install --no-index --find-links /tmp/wheels \
        --break-system-packages --no-cache-dir --root-user-action=ignore "trainyard[fl]" \
    && rm -rf /tmp/wheels \
    && groupadd --gid 10002 hub \
    && useradd --uid 10002 --gid 10002 --home-dir /var/lib/trainyard --shell /usr/sbin/nologin hub \
    && mkdir -p /var/lib/trainyard/hub && chown -R 10002:10002 /var/lib/trainyard

USER 10002:10002
WORKDIR /var/lib/trainyard
EXPOSE 8000
# TRAINYARD_HUB_ADMIN_PASSWORD must be set for the first start (init is safe to repeat).
CMD ["sh", "-c", "trainyard hub init --state /var/lib/trainyard/hub --admin-user \"${TRAINYARD_HUB_ADMIN_USER:-admin}\" && exec trainyard hub serve --state /var/lib/trainyard/hub --host 0.0.0.0 --port 8000 --base-iri \"${TRAINYARD_HUB_BASE_IRI:-http://localhost:8000}\""]
