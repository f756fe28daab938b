#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; start one when it does not.
#
#   bash docker/ensure-engine.sh
#
# Idempotent: exits 0 at once when `docker info` already works. Otherwise, as root, it
# installs docker.io with apt-get when dockerd is missing, starts dockerd in the
# background (log: /var/log/trainyard-dockerd.log) with the first storage driver that
# works here (overlay2, then vfs), and waits up to TRAINYARD_ENGINE_WAIT_S seconds
# (default 60) for the engine to answer. Exits non-zero with a clear message otherwise.
set -euo pipefail

LOG=${TRAINYARD_DOCKERD_LOG:-/var/log/trainyard-dockerd.log}
WAIT_S=${TRAINYARD_ENGINE_WAIT_S:-60}
DRIVERS=${TRAINYARD_STORAGE_DRIVERS:-"overlay2 vfs"}

say() { echo "ensure-engine: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
    say "Docker engine already answers"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    fail "no Docker engine answers and this is not root, so none can be started; start dockerd or join the docker group"
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || fail "dockerd is missing and apt-get is not available to install docker.io"
    say "installing docker.io with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || fail "apt-get update failed; cannot install docker.io"
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null || fail "apt-get install docker.io failed"
fi

# A dockerd of ours may still be starting (a concurrent caller): wait for it first.
wait_for_engine() {
    local pid=$1 waited=0
    while [ "$waited" -lt "$WAIT_S" ]; do
        if engine_answers; then
            return 0
        fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    return 1
}

dockerd_running() {
    if command -v pgrep >/dev/null 2>&1; then
        pgrep -x dockerd >/dev/null 2>&1
    else
        [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null
    fi
}

if dockerd_running; then
    say "dockerd is running but not answering yet; waiting up to ${WAIT_S}s"
    if wait_for_engine ""; then
        say "Docker engine answers"
        exit 0
    fi
    fail "dockerd is running but does not answer on its socket after ${WAIT_S}s; see $LOG"
fi

mkdir -p "$(dirname "$LOG")"
for driver in $DRIVERS; do
    say "starting dockerd (storage driver $driver), log: $LOG"
    {
        echo "=== $(date -Is) trainyard ensure-engine: dockerd --storage-driver=$driver"
    } >>"$LOG"
    # setsid + nohup: dockerd outlives this script and the shell that called it.
    setsid nohup dockerd --storage-driver="$driver" --host=unix:///var/run/docker.sock \
        >>"$LOG" 2>&1 </dev/null &
    pid=$!
    if wait_for_engine "$pid"; then
        say "Docker engine answers (dockerd pid $pid, storage driver $driver)"
        exit 0
    fi
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        sleep 2
    fi
    say "dockerd with storage driver $driver did not come up"
    rm -f /var/run/docker.pid
done

say "last lines of $LOG:"
tail -n 20 "$LOG" >&2 || true
fail "could not start a Docker engine (tried storage drivers: $DRIVERS)"
