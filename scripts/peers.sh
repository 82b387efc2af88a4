#!/usr/bin/env bash
# Install the independent protocol peers the connector tests run against (Node.js programs from
# the npm registry: node-opcua, modbus-serial, mqtt, sparkplug-payload) into tests/peers/node_modules.
# Idempotent: a second run only checks that the install matches package-lock.json.
set -uo pipefail
cd "$(dirname "$0")/../tests/peers"

if ! command -v npm >/dev/null 2>&1; then
  echo "==> installing Node.js and npm for the independent test peers"
  (apt-get update -qq && apt-get install -y -qq nodejs npm) >/dev/null 2>&1 \
    || { echo "warning: could not install Node.js; the independent-peer tests will skip" >&2; exit 0; }
fi
stamp=node_modules/.axhub-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "==> installing the npm test peers (tests/peers)"
  if npm ci --omit=optional --no-audit --no-fund --loglevel=error >/dev/null; then
    touch "$stamp"
  else
    echo "warning: npm ci failed in tests/peers; the independent-peer tests will skip" >&2
  fi
fi
exit 0
