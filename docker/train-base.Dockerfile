# The image every train runs in at a Docker station.
#
# Built offline by docker/build-train-base.sh on top of trainyard/debian-python:bookworm,
# a debootstrapped Debian bookworm (python3, python3-numpy, python3-pydicom) imported with
# `docker import`; no registry is involved. The build context holds only trainkit/.
ARG BASE=trainyard/debian-python:bookworm
FROM ${BASE}

ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TRAINYARD_DATA=/data \
    TRAINYARD_OUT=/out \
    TRAINYARD_TRAIN=/train \
    TRAINYARD_JOB=/job/job.json

COPY trainkit/ /usr/lib/python3/dist-packages/trainkit/

RUN python3 -m compileall -q /usr/lib/python3/dist-packages/trainkit \
    && groupadd --gid 10001 train \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin train \
    && mkdir -p /data /out /train /job \
    && chown 10001:10001 /out

USER 10001:10001
WORKDIR /train
CMD ["python3"]
