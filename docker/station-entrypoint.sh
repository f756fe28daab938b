#!/bin/sh
# Start one station of the compose federation: enrol once, harvest, publish, run.
#
# Environment: STATION (slug), HUB_URL, ENROLMENT_TOKEN (first start only), STATE (state
# folder), DATA (DICOM folder; synthetic data is written there when it is empty),
# SITE_INDEX (0-2, for the synthetic data), COLLECTION, TITLE.
#
# Started as root, it hands the state and data folders and the Docker socket's group to the
# user `station` and re-executes itself as that user: the agent never runs as root.
set -eu
: "${STATION:?set STATION}" "${HUB_URL:?set HUB_URL}" "${STATE:?set STATE}" "${DATA:?set DATA}"
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$STATE" "$DATA"
    chown -R station:station "$STATE"
    # synthetic data is written into an empty data folder; real data stays as the hospital owns it
    [ -n "$(ls -A "$DATA")" ] || chown station:station "$DATA"
    groups=10002
    if [ -S /var/run/docker.sock ]; then
        groups="$groups,$(stat -c %g /var/run/docker.sock)"
    fi
    exec setpriv --reuid=10002 --regid=10002 --groups="$groups" --inh-caps=-all --bounding-set=-all \
        sh "$0" "$@"
fi
COLLECTION=${COLLECTION:-imaging}
TITLE=${TITLE:-"Imaging collection of $STATION"}

mkdir -p "$STATE" "$DATA"
if [ -z "$(ls -A "$DATA")" ]; then
    trainyard station synth "$DATA" --site-index "${SITE_INDEX:-0}"
fi

# Wait for the hub.
i=0
until python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/docs', timeout=3)" "$HUB_URL" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 60 ] || { echo "trainyard-station: hub $HUB_URL does not answer" >&2; exit 1; }
    sleep 2
done

if [ ! -f "$STATE/.compose-enrolled" ]; then
    : "${ENROLMENT_TOKEN:?set ENROLMENT_TOKEN for the first start (from the hub admin)}"
    trainyard station enrol --state "$STATE" --hub "$HUB_URL" --name "$STATION" --token "$ENROLMENT_TOKEN"
    touch "$STATE/.compose-enrolled"
fi
trainyard station harvest "$DATA" --state "$STATE" --collection "$COLLECTION" --title "$TITLE"
trainyard station publish --state "$STATE"
exec trainyard station run --state "$STATE" --executor docker
