#!/usr/bin/env bash
# Checks both units with `systemd-analyze verify`, pointing their ExecStart at the built
# binaries (verify insists that they exist): systemd/verify.sh [DIR holding edgehub and
# edge-agent], default target/debug.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "${1:-$here/../target/debug}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in edgehub.service edge-agent.service; do
    sed "s|/usr/local/bin/|$bin/|g" "$here/$unit" > "$work/$unit"
done
systemd-analyze verify "$work/edgehub.service" "$work/edge-agent.service"
echo "systemd units verified"
