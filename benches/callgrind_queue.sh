#!/usr/bin/env bash
# Instructions per no-op job, counted by callgrind: repeatable for the same binaries and inputs
# whatever else the machine is doing, where jobs/s on two shared cores move by ±25 %.
#
#   benches/callgrind_queue.sh worker [WORKER_BIN]   the worker process
#   benches/callgrind_queue.sh redis  [WORKER_BIN]   a redis-server of its own (port 6390),
#                                                    with the bench's enqueue and read-back in it
#   benches/callgrind_queue.sh postgres [WORKER_BIN] a PostgreSQL cluster of its own (port
#                                                    5499, made by initdb, default settings),
#                                                    every process of it counted
#
# Each runs voxfleet-bench's throughput section (concurrency 32) twice, with 1,000 and 5,000
# jobs, and prints the difference divided by 4,000: start-up and shut-down cancel out. Build
# first, e.g. `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo build --workspace --bins --locked` (the dev
# profile already builds every dependency at opt-level 3; this adds voxfleet's own crates).
# BENCH=path/to/voxfleet-bench runs another build's bench (its enqueue is in the redis count).
# KEEP=DIR keeps the 5,000-job run's callgrind files there, for callgrind_annotate.
# Needs valgrind (Debian's package).
set -euo pipefail
what="${1:?worker, redis or postgres}"
target="${CARGO_TARGET_DIR:-$HOME/.cache/voxfleet/target}/debug"
worker="${2:-$target/voxfleet-worker}"
bench="${BENCH:-$target/voxfleet-bench}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# symbols without DWARF: callgrind reads them in seconds instead of minutes
strip --strip-debug -o "$work/worker" "$worker"

run() { # jobs, extra bench args...
  local n=$1
  shift
  "$bench" --only throughput --jobs "$n" --concurrency 32 --skip-apalis --timeout 600 "$@" 2>&1 |
    grep -E "c=32 voxfleet" | cut -c1-140
}

declare -A total
case "$what" in
  worker)
    cat > "$work/wrap.sh" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$work/cg.%p --dump-instr=no $work/worker "\$@"
EOF
    chmod +x "$work/wrap.sh"
    for n in 1000 5000; do
      rm -f "$work"/cg.*
      run "$n" --worker-bin "$work/wrap.sh"
      total[$n]=$(grep -h '^summary' "$work"/cg.* | cut -d' ' -f2)
    done
    ;;
  redis)
    for n in 1000 5000; do
      valgrind --tool=callgrind --callgrind-out-file="$work/redis.$n" --dump-instr=no \
        redis-server --port 6390 --save '' --appendonly no > "$work/redis.log" 2>&1 &
      local_pid=$!
      for _ in $(seq 100); do redis-cli -p 6390 ping > /dev/null 2>&1 && break; sleep 0.2; done
      run "$n" --redis-url redis://127.0.0.1:6390/0 --worker-bin "$work/worker"
      redis-cli -p 6390 shutdown nosave > /dev/null 2>&1 || true
      wait "$local_pid" || true
      total[$n]=$(grep -h '^summary' "$work/redis.$n" | cut -d' ' -f2)
    done
    ;;
  postgres)
    # PostgreSQL will not run as root: its cluster and the counts belong to `postgres`
    pgbin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -1)
    [ -x "$pgbin/initdb" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }
    as_pg=()
    [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
    chmod 755 "$work"
    mkdir "$work/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$work/pg"
    for n in 1000 5000; do
      rm -rf "$work/pg/data" "$work/pg"/cg.*
      "${as_pg[@]}" "$pgbin/initdb" -D "$work/pg/data" --auth=trust -U postgres > /dev/null
      "${as_pg[@]}" valgrind --tool=callgrind --callgrind-out-file="$work/pg/cg.%p" --dump-instr=no \
        "$pgbin/postgres" -D "$work/pg/data" -p 5499 -k "$work/pg" -c listen_addresses=127.0.0.1 \
        > "$work/pg/log" 2>&1 &
      for _ in $(seq 300); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p 5499 && break; sleep 0.2; done
      run "$n" --database-url postgres://postgres@127.0.0.1:5499/postgres --worker-bin "$work/worker"
      "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" stop -m fast -t 600 > /dev/null
      wait
      total[$n]=$(grep -h '^summary' "$work/pg"/cg.* | awk '{s += $2} END {print s}')
    done
    ;;
  *)
    echo "worker, redis or postgres" >&2
    exit 2
    ;;
esac
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP"
  find "$work" -name 'cg.*' -o -name 'redis.5000' | xargs -r cp -t "$KEEP"
fi
echo "$what: $(((total[5000] - total[1000]) / 4000)) instructions per job" \
  "(1,000 jobs: ${total[1000]}, 5,000 jobs: ${total[5000]})"
