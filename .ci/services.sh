#!/usr/bin/env bash
# Ensure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer; start them if stopped.
# Endpoints can be changed with PGHOST/PGPORT and REDIS_HOST/REDIS_PORT.
set -euo pipefail

pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}
redis_host=${REDIS_HOST:-127.0.0.1}
redis_port=${REDIS_PORT:-6379}

pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port" >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null)" = "PONG" ]; }

wait_for() {  # name, check function
  for _ in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  echo "services: $1 did not come up" >&2
  return 1
}

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    wait_for PostgreSQL pg_up
  else
    echo "services: PostgreSQL is not answering on $pg_host:$pg_port and cannot be started here." >&2
    echo "  Debian/Ubuntu: sudo apt-get install -y postgresql && sudo pg_ctlcluster 15 main start" >&2
    exit 1
  fi
fi

if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis_up
  else
    echo "services: Redis is not answering on $redis_host:$redis_port and cannot be started here." >&2
    echo "  Debian/Ubuntu: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi
echo "services: PostgreSQL $pg_host:$pg_port and Redis $redis_host:$redis_port are up"
