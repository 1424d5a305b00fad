#!/usr/bin/env bash
# Makes sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, user postgres, trust auth on
# loopback) are running. Installs them from Debian's packages when absent and starts them when
# stopped. Safe to run again and again.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
ensure_redis() {
  command -v redis-cli >/dev/null && redis_up && return 0
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    log "installing redis-server"
    apt_install redis-server redis-tools
  fi
  redis_up && return 0
  log "starting redis-server on 127.0.0.1:6379"
  mkdir -p /tmp/voxfleet-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/voxfleet-redis --logfile /tmp/voxfleet-redis/redis.log
  for _ in $(seq 1 50); do redis_up && return 0; sleep 0.2; done
  log "redis did not come up"; return 1
}

pg_up() { psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; }
ensure_postgres() {
  command -v psql >/dev/null && pg_up && return 0
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    log "installing postgresql"
    apt_install postgresql
  fi
  pg_up && return 0
  local ver; ver=$(ls /etc/postgresql | sort -V | tail -n1)
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  # trust on loopback, as the tests and the README's commands expect (development machines only)
  if ! grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    log "setting trust auth for 127.0.0.1 in $hba"
    as_root sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(host\s+all\s+all\s+::1\/128\s+)\S+/\1trust/' "$hba"
  fi
  log "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
  for _ in $(seq 1 50); do pg_up && return 0; sleep 0.2; done
  log "postgresql did not come up"; return 1
}

ensure_tools() {
  command -v curl >/dev/null || apt_install curl
  command -v python3 >/dev/null || apt_install python3
}

ensure_tools
ensure_redis
ensure_postgres
log "redis and postgresql are up"
