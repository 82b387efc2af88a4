#!/usr/bin/env bash
# Start the local services the tests talk to, where they are installed but down.
# (The commands are those of this machine kind; each is a no-op when the service runs.)
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "==> starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! port_open 1883; then
  if ! command -v mosquitto >/dev/null; then
    echo "==> installing Mosquitto"
    (apt-get update -qq && apt-get install -y -qq mosquitto mosquitto-clients) >/dev/null 2>&1 || true
  fi
  if command -v mosquitto >/dev/null; then
    echo "==> starting Mosquitto"
    if [ -f /etc/mosquitto/mosquitto.conf ]; then mosquitto -d -c /etc/mosquitto/mosquitto.conf; else mosquitto -d; fi
  fi
fi
if ! command -v mosquitto_sub >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq mosquitto-clients) >/dev/null 2>&1 || true
fi
if ! port_open 6379 && command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
# The dashboard's browser tests drive Debian's Chromium (never a downloaded browser);
# Nanum fonts so Korean text renders in screenshots.
if ! command -v chromium >/dev/null; then
  echo "==> installing Chromium for the browser tests"
  (apt-get update -qq && apt-get install -y -qq chromium fonts-nanum) >/dev/null 2>&1 \
    || echo "warning: could not install chromium; browser tests will skip" >&2
fi
# Independent protocol peers (Node.js, npm) for the connector tests.
bash "$(dirname "$0")/peers.sh"
for i in $(seq 1 30); do port_open 5432 && port_open 1883 && break; sleep 1; done
port_open 5432 || echo "warning: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
port_open 1883 || echo "warning: Mosquitto is not reachable on 127.0.0.1:1883" >&2
exit 0
