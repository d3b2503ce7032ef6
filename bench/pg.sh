#!/usr/bin/env bash
# bench/pg.sh: cairn vs pgBackRest (and pg_basebackup / pg_dump baselines) on
# one PostgreSQL 15 cluster, in one run.
#
#   0 setup         initdb, pgbench -i -s SCALE; WAL archived into both repositories
#   1 full          pg_basebackup -Ft (plain copy) | cairn pg backup --mode physical |
#                   pgbackrest backup --type=full                       (cold each)
#   2a, 2b          after a small change each: cairn pg backup again | pgbackrest
#                   --type=incr (cold). 2a: pgbench -t 1000 (random rows), 2b: UPDATE
#                   of a contiguous 1 % of the accounts. New data: cairn's --json
#                   .summary.data_added_raw (uncompressed bytes in new chunks) vs
#                   .summary.total_bytes; pgBackRest's info delta vs size
#   3 restore       cairn pg restore --target-dir | pgbackrest restore --pg1-path
#                   (cold, fresh dirs); each restored cluster is then started and
#                   its pgbench_accounts compared with the source (not timed)
#   4 logical       cairn pg backup --mode logical | pg_dump -Fc -f FILE (cold)
#   5 wal-push      N real WAL segments (copied while pgbench -i ran), one process
#                   per segment: cairn --key-file K wal-push | pgbackrest archive-push
#                   (sync), into fresh repositories
#
# Usage: bench/pg.sh [--scale N] [--segments N] [--change tpcb|range|both]
# Run as root (PostgreSQL runs as postgres through runuser; page cache drops).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=100
SEGMENTS=50
CHANGE=both
usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --segments) SEGMENTS=$2; shift 2 ;;
    --change) CHANGE=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $SCALE =~ ^[0-9]+$ && $SCALE -ge 1 ]] || { echo "--scale must be a positive integer" >&2; exit 2; }
[[ $SEGMENTS =~ ^[0-9]+$ && $SEGMENTS -ge 1 ]] || { echo "--segments must be a positive integer" >&2; exit 2; }
case $CHANGE in tpcb) CHANGES=(tpcb) ;; range) CHANGES=(range) ;; both) CHANGES=(tpcb range) ;;
  *) echo "--change must be tpcb, range or both" >&2; exit 2 ;; esac

BENCH_DIR=${BENCH_DIR:-/var/tmp/cairn-pgbench}
CAIRN_SRC=${CAIRN:-$ROOT/build/release/cairn}
PGBIN=/usr/lib/postgresql/15/bin
PGBR_CIPHER=${PGBR_CIPHER:-1}
W=$BENCH_DIR/work
LOGS=$BENCH_DIR/logs
BIN=$BENCH_DIR/bin
SOCK=$W/sock
DATA=$W/data
STANZA=bench

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

(($(id -u) == 0)) || die "run as root (the server runs as postgres through runuser; cold steps drop the page cache)"
[[ -x $PGBIN/initdb ]] || die "PostgreSQL 15 is missing: apt-get install postgresql-15 postgresql-contrib"
need_pkg=()
command -v pgbackrest >/dev/null || need_pkg+=(pgbackrest)
[[ -x /usr/bin/time ]] || need_pkg+=(time)
command -v jq >/dev/null || need_pkg+=(jq)
if ((${#need_pkg[@]})); then
  log "installing ${need_pkg[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkg[@]}" >/dev/null
fi
[[ -x $CAIRN_SRC ]] || die "no cairn binary at $CAIRN_SRC (cmake --preset release && cmake --build build/release)"

# ---------------------------------------------------------------- cleanup
STARTED=()  # data dirs of servers we started
stop_server() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1" -m "${2:-fast}" -w -t 60 stop >/dev/null 2>&1 || true; }
cleanup() {
  local d
  for d in "${STARTED[@]}"; do stop_server "$d" immediate; done
  STARTED=()
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cleanup
rm -rf "$LOGS" "$BIN"
mkdir -p "$W" "$LOGS" "$BIN" "$SOCK"
chmod 755 "$BENCH_DIR" "$BIN"
chown postgres: "$W" "$LOGS" "$SOCK"
chmod 700 "$W"
# A private copy: rebuilding during the run does not change what is measured.
cp "$CAIRN_SRC" "$BIN/cairn"
chmod 755 "$BIN/cairn"
C=$BIN/cairn
CAIRN_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && CAIRN_COMMIT+="-dirty"

as_pg() { runuser -u postgres -- "$@"; }
psql_q() { as_pg "$PGBIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$SOCK" -p "${PSQL_PORT:-$PORT}" -U postgres -d postgres "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() { # DATADIR
  STARTED+=("$1")
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$LOGS/$(basename "$1").log" -w -t 300 start >/dev/null ||
    die "server in $1 did not start: $(tail -n 20 "$LOGS/$(basename "$1").log")"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
bytes() { du -sb "$1" | cut -f1; }

# run_step NAME COLD CMD...: runs CMD as postgres under /usr/bin/time.
declare -A SECS RSS LOAD CPU_U CPU_S
FAILURES=()
run_step() {
  local name=$1 cold=$2 rc=0
  shift 2
  ((cold)) && drop_caches
  LOAD[$name]=$(cut -d' ' -f1 /proc/loadavg)
  printf '%q ' "$@" >"$LOGS/$name.cmd"
  log "$name: $*"
  as_pg /usr/bin/time -o "$LOGS/$name.time" -f '%e %M %U %S' "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" || rc=$?
  read -r "SECS[$name]" "RSS[$name]" "CPU_U[$name]" "CPU_S[$name]" < <(tail -n 1 "$LOGS/$name.time")
  if ((rc != 0)); then
    FAILURES+=("$name exited $rc (see $LOGS/$name.err)")
    printf '\n!!!!! %s FAILED (exit %s):\n' "$name" "$rc" >&2
    tail -n 20 "$LOGS/$name.err" >&2
    unset "SECS[$name]"
    return 1
  fi
  log "$name: ${SECS[$name]} s, $((RSS[$name] / 1024)) MB, CPU ${CPU_U[$name]} user + ${CPU_S[$name]} sys"
}

# ---------------------------------------------------------------- cluster
UPTIME_START=$(uptime)
DATE_START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "start: $UPTIME_START"
PORT=$(free_port)
REPO=$W/cairn-repo
KEY=$W/cairn.key
PGBR_CONF=$W/pgbackrest.conf
PGBR_REPO=$W/pgbr-repo
WALSRC=$W/walsrc
mkdir -p "$WALSRC"
chown postgres: "$WALSRC"

write_pgbr_conf() { # FILE REPO_PATH
  {
    printf '[global]\nrepo1-path=%s\nprocess-max=2\ncompress-type=zst\ncompress-level=3\n' "$2"
    printf 'start-fast=y\nrepo1-retention-full=99\narchive-async=n\n'
    printf 'log-level-console=warn\nlog-level-file=off\nlock-path=%s/pgbr-lock\nspool-path=%s/pgbr-spool\n' "$W" "$W"
    if ((PGBR_CIPHER)); then printf 'repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=bench-cipher-pass\n'; fi
    printf '\n[%s]\npg1-path=%s\npg1-socket-path=%s\npg1-port=%s\npg1-user=postgres\n' "$STANZA" "$DATA" "$SOCK" "$PORT"
  } >"$1"
  chown postgres: "$1"
}
write_pgbr_conf "$PGBR_CONF" "$PGBR_REPO"

# archive_command: while pgbench -i writes WAL, a script keeps the first
# SEGMENTS segments for step 5 (and archives nothing); during steps 1-2 every
# segment goes into cairn AND pgBackRest, so both tools' backups find their WAL
# (pgBackRest also insists that archive_command mentions pgbackrest); from
# step 3 on nothing is archived.
cat >"$BIN/keep-wal.sh" <<EOF
#!/bin/sh
case \$(basename "\$1") in ????????????????????????) ;; *) exit 0 ;; esac
[ "\$(ls '$WALSRC' | wc -l)" -lt $SEGMENTS ] && cp "\$1" '$WALSRC/'
exit 0
EOF
chmod 755 "$BIN/keep-wal.sh"
ARCHIVE_BOTH="$C --key-file $KEY --repo $REPO wal-push --service $STANZA %p && pgbackrest --config=$PGBR_CONF --stanza=$STANZA archive-push %p"
set_archive_command() {
  psql_q -c "ALTER SYSTEM SET archive_command = '$1'" -c 'SELECT pg_reload_conf()' >/dev/null
  sleep 1 # the archiver rereads its configuration between segments
}

log "initdb, server on port $PORT"
as_pg "$PGBIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --locale=C >"$LOGS/initdb.log" || die "initdb"
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$SOCK'
wal_level = replica
archive_mode = on
archive_command = '$BIN/keep-wal.sh %p'
max_wal_size = 4GB
EOF
start_server "$DATA"

log "cairn repository (key file), pgBackRest stanza"
as_pg env CAIRN_PASSWORD=bench "$C" --no-progress init --repo "$REPO" >"$LOGS/cairn-init.log" 2>&1 || die "cairn init: $(cat "$LOGS/cairn-init.log")"
as_pg env CAIRN_PASSWORD=bench "$C" --no-progress --repo "$REPO" key add --new-key-file "$KEY" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn key add"
as_pg pgbackrest --config="$PGBR_CONF" --stanza=$STANZA stanza-create >"$LOGS/pgbr-stanza.log" 2>&1 || die "stanza-create: $(cat "$LOGS/pgbr-stanza.log")"

wait_archived() { # every .ready segment handed to archive_command
  psql_q -c 'SELECT pg_switch_wal()' >/dev/null
  for _ in $(seq 1 1200); do
    compgen -G "$DATA/pg_wal/archive_status/*.ready" >/dev/null || return 0
    sleep 0.25
  done
  die "archiver did not catch up: $(psql_q -c 'SELECT * FROM pg_stat_archiver')"
}

run_step pgbench_init 0 "$PGBIN/pgbench" -i -s "$SCALE" -q -h "$SOCK" -p "$PORT" -U postgres postgres || die "pgbench -i"
wait_archived
psql_q -c 'CHECKPOINT' >/dev/null
set_archive_command "$ARCHIVE_BOTH"
wait_archived
DB_BYTES=$(psql_q -c 'SELECT pg_database_size(current_database())')
CLUSTER_BYTES=$(bytes "$DATA")
N_SEG=$(find "$WALSRC" -type f | wc -l)
log "database $((DB_BYTES / 1000000)) MB, data dir $((CLUSTER_BYTES / 1000000)) MB, $N_SEG WAL segments kept for step 5"
source_state() { PSQL_PORT=${1:-$PORT} psql_q -c 'SELECT count(*), sum(abalance), (SELECT sum(bbalance) FROM pgbench_branches) FROM pgbench_accounts'; }

# ---------------------------------------------------------------- 1 full physical
DSN="host=$SOCK port=$PORT user=postgres dbname=postgres"
PGBR=(pgbackrest --config="$PGBR_CONF" --stanza=$STANZA)
CJ=("$C" --no-progress --key-file "$KEY" --repo "$REPO")
mkdir -p "$W/basebackup"
chown postgres: "$W/basebackup"
declare -A SIZE
run_step basebackup_full 1 "$PGBIN/pg_basebackup" -h "$SOCK" -p "$PORT" -U postgres -Ft -X fetch --checkpoint=fast \
  -D "$W/basebackup" && SIZE[basebackup_full]=$(bytes "$W/basebackup")
rm -rf "$W/basebackup"
wait_archived
repo0=$(bytes "$REPO")
if run_step cairn_full 1 "${CJ[@]}" --json pg backup --mode physical --service $STANZA --dsn "$DSN"; then
  SIZE[cairn_full]=$(($(bytes "$REPO") - repo0))
fi
wait_archived
pgbr_backup_bytes() { # LABEL-INDEX: repository bytes of the n-th backup (0 = first)
  as_pg "${PGBR[@]}" info --output=json | jq -r ".[0].backup[$1].info.repository.delta"
}
pgbr_backup_delta() { as_pg "${PGBR[@]}" info --output=json | jq -r ".[0].backup[$1].info.delta"; }
if run_step pgbr_full 1 "${PGBR[@]}" backup --type=full; then
  SIZE[pgbr_full]=$(pgbr_backup_bytes 0)
fi
wait_archived

# ---------------------------------------------------------------- 2 after a small change
declare -A CHANGE_DESC=(
  [tpcb]="pgbench -n -t 1000 -c 1 (1000 TPC-B transactions: random accounts, tellers, branches, history)"
  [range]="UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $((SCALE * 1000)) (a contiguous 1 %)"
)
declare -A ADDED_RAW TOTAL PGBR_DELTA PGBR_SIZE
n_pgbr=1 # backups in the pgBackRest repository so far
for ch in "${CHANGES[@]}"; do
  case $ch in
    tpcb) run_step "change_$ch" 0 "$PGBIN/pgbench" -n -t 1000 -c 1 -h "$SOCK" -p "$PORT" -U postgres postgres || die "change" ;;
    range) run_step "change_$ch" 0 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres \
      -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $((SCALE * 1000))" || die "change" ;;
  esac
  wait_archived
  repo0=$(bytes "$REPO")
  if run_step "cairn_second_$ch" 1 "${CJ[@]}" --json pg backup --mode physical --service $STANZA --dsn "$DSN"; then
    SIZE[cairn_second_$ch]=$(($(bytes "$REPO") - repo0))
    ADDED_RAW[$ch]=$(jq -r .summary.data_added_raw "$LOGS/cairn_second_$ch.out")
    TOTAL[$ch]=$(jq -r .summary.total_bytes "$LOGS/cairn_second_$ch.out")
  fi
  wait_archived
  if run_step "pgbr_incr_$ch" 1 "${PGBR[@]}" backup --type=incr; then
    SIZE[pgbr_incr_$ch]=$(pgbr_backup_bytes $n_pgbr)
    PGBR_DELTA[$ch]=$(pgbr_backup_delta $n_pgbr)
    PGBR_SIZE[$ch]=$(as_pg "${PGBR[@]}" info --output=json | jq -r ".[0].backup[$n_pgbr].info.size")
    n_pgbr=$((n_pgbr + 1))
  fi
done
SOURCE_STATE=$(source_state)
wait_archived
# Nothing may reach the archive after this point: the restores below recover
# to the end of the archived WAL, which must be what SOURCE_STATE saw.
set_archive_command /bin/true

# ---------------------------------------------------------------- 3 restore
declare -A VERIFIED
verify_restore() { # NAME DIR: start the restored cluster, wait for recovery, compare
  local name=$1 dir=$2 port state
  port=$(free_port)
  printf "port = %s\narchive_mode = off\n" "$port" >>"$dir/postgresql.auto.conf"
  chown postgres: "$dir/postgresql.auto.conf"
  log "$name: starting the restored cluster (port $port) to compare it with the source (not timed)"
  STARTED+=("$dir")
  if ! as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$LOGS/$name.server.log" -w -t 600 start >/dev/null; then
    VERIFIED[$name]="no (server did not start, see $LOGS/$name.server.log)"
    FAILURES+=("$name: restored server did not start")
    return
  fi
  for _ in $(seq 1 1200); do
    [[ $(PSQL_PORT=$port psql_q -c 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]] && break
    sleep 0.25
  done
  state=$(source_state "$port" 2>&1 || true)
  if [[ $state == "$SOURCE_STATE" ]]; then
    VERIFIED[$name]=yes
  else
    VERIFIED[$name]="no (got '$state', source '$SOURCE_STATE')"
    FAILURES+=("$name: restored cluster differs from the source: '$state' vs '$SOURCE_STATE'")
  fi
  stop_server "$dir"
  rm -rf "$dir"
}
for t in cairn pgbr; do
  mkdir -m 700 "$W/restore-$t"
  chown postgres: "$W/restore-$t"
done
run_step cairn_restore 1 "${CJ[@]}" pg restore --service $STANZA --target-dir "$W/restore-cairn" &&
  verify_restore cairn_restore "$W/restore-cairn"
run_step pgbr_restore 1 "${PGBR[@]}" restore --pg1-path="$W/restore-pgbr" &&
  verify_restore pgbr_restore "$W/restore-pgbr"
rm -rf "$W/restore-cairn" "$W/restore-pgbr"

# ---------------------------------------------------------------- 4 logical
repo0=$(bytes "$REPO")
if run_step cairn_logical 1 "${CJ[@]}" --json pg backup --mode logical --service $STANZA --dsn "$DSN"; then
  SIZE[cairn_logical]=$(($(bytes "$REPO") - repo0))
fi
run_step pg_dump 1 "$PGBIN/pg_dump" -h "$SOCK" -p "$PORT" -U postgres -Fc -f "$W/dump.fc" postgres &&
  SIZE[pg_dump]=$(bytes "$W/dump.fc")
rm -f "$W/dump.fc"

# ---------------------------------------------------------------- 5 wal-push
# Fresh repositories, one process per segment, as archive_command would run it.
REPO2=$W/cairn-repo-wal
KEY2=$W/cairn-wal.key
PGBR_CONF2=$W/pgbackrest-wal.conf
write_pgbr_conf "$PGBR_CONF2" "$W/pgbr-repo-wal"
as_pg env CAIRN_PASSWORD=bench "$C" --no-progress init --repo "$REPO2" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn init (wal)"
as_pg env CAIRN_PASSWORD=bench "$C" --no-progress --repo "$REPO2" key add --new-key-file "$KEY2" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn key add (wal)"
as_pg pgbackrest --config="$PGBR_CONF2" --stanza=$STANZA stanza-create >>"$LOGS/pgbr-stanza.log" 2>&1 || die "stanza-create (wal)"
SEG_BYTES=$(bytes "$WALSRC")
cat "$WALSRC"/* >/dev/null  # both tools read the segments from the page cache, as archive_command does
run_step cairn_walpush 0 sh -c 'for f in "$0"/*; do "$1" --key-file "$2" --repo "$3" wal-push --service "$4" "$f" || exit 1; done' \
  "$WALSRC" "$C" "$KEY2" "$REPO2" $STANZA && SIZE[cairn_walpush]=$(bytes "$REPO2")
run_step pgbr_walpush 0 sh -c 'for f in "$0"/*; do pgbackrest --config="$1" --stanza="$2" archive-push "$f" || exit 1; done' \
  "$WALSRC" "$PGBR_CONF2" $STANZA && SIZE[pgbr_walpush]=$(bytes "$W/pgbr-repo-wal")
# cairn --async: a simulated pg_wal (hard links + archive_status/*.ready),
# one archive_command call per segment in order, .ready -> .done on success.
REPO3=$W/cairn-repo-walasync
SIM=$W/pg_wal_sim
mkdir -p "$SIM/archive_status"
for f in "$WALSRC"/*; do ln "$f" "$SIM/"; touch "$SIM/archive_status/$(basename "$f").ready"; done
chown -R "$(stat -c %U "$W")" "$SIM"
as_pg env CAIRN_PASSWORD=bench "$C" --no-progress init --repo "$REPO3" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn init (wal async)"
as_pg env CAIRN_PASSWORD=bench "$C" --no-progress --repo "$REPO3" key add --new-key-file "$W/cairn-walasync.key.new" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn key add (wal async)"
run_step cairn_walpush_async 0 sh -c 'for f in "$0"/0*; do "$1" --key-file "$2" --repo "$3" wal-push --service "$4" --async --spool-dir "$5" "$f" || exit 1; mv "$0/archive_status/$(basename "$f").ready" "$0/archive_status/$(basename "$f").done"; done' \
  "$SIM" "$C" "$W/cairn-walasync.key.new" "$REPO3" $STANZA "$W/spool" && SIZE[cairn_walpush_async]=$(bytes "$REPO3")

stop_server "$DATA"
UPTIME_END=$(uptime)
DATE_END=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "end: $UPTIME_END"

# ---------------------------------------------------------------- report
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
mb() { [[ -n ${1-} && $1 != null ]] && awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }' || echo n/a; }
ratio() { [[ -n ${1-} && -n ${2-} ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }' || echo n/a; }
cell() { # STEP: "s / RSS MB"
  if [[ -n ${SECS[$1]-} ]]; then printf '%s s / %s MB' "$(f2 "${SECS[$1]}")" "$((RSS[$1] / 1024))"; else printf 'FAILED'; fi
}
rate() { if [[ -n ${SECS[$1]-} ]]; then awk -v n="$N_SEG" -v s="${SECS[$1]}" 'BEGIN { printf "%.1f", n / s }'; fi; }
pct() { [[ -n ${1-} && -n ${2-} && $2 != 0 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", 100 * a / b }' || echo n/a; }

RESULTS=$BENCH_DIR/results.md
{
  printf '# cairn vs pgBackRest on PostgreSQL 15, pgbench scale %s\n\n' "$SCALE"
  printf -- '- date: %s to %s\n' "$DATE_START" "$DATE_END"
  printf -- '- machine: %s, %s CPUs, %s GiB RAM\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
    "$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
  printf -- '- load at start: `%s`\n- load at end: `%s`\n' "${UPTIME_START# }" "${UPTIME_END# }"
  printf -- '- cairn %s (commit %s), %s, %s\n' "$("$C" --version 2>&1 | head -n 1)" "$CAIRN_COMMIT" "$(pgbackrest version)" \
    "$("$PGBIN/postgres" --version)"
  printf -- '- database %s MB, data directory %s MB; pgbench -i took %s s\n' "$(mb "$DB_BYTES")" "$(mb "$CLUSTER_BYTES")" "${SECS[pgbench_init]-n/a}"
  printf -- '- pgBackRest: process-max=2, compress-type=zst, compress-level=3, start-fast=y, %s; cairn: key file (no KDF), default compression\n' \
    "$( ((PGBR_CIPHER)) && echo 'repo1-cipher-type=aes-256-cbc (cairn always encrypts)' || echo 'no encryption (cairn always encrypts)')"
  printf -- '- WAL archived into both repositories during steps 1-2 (archive_command runs cairn wal-push, then pgbackrest archive-push)\n'
  for ch in "${CHANGES[@]}"; do printf -- '- change before step 2%s: %s\n' "$([[ $ch == tpcb ]] && echo a || echo b)" "${CHANGE_DESC[$ch]}"; done
  printf '\n'
  printf '| step | cairn | pgBackRest | baseline | cairn/pgBackRest |\n|---|---:|---:|---:|---:|\n'
  printf '| 1 full physical backup (cold), s / RSS | %s | %s | %s (pg_basebackup -Ft) | **%s** |\n' \
    "$(cell cairn_full)" "$(cell pgbr_full)" "$(cell basebackup_full)" "$(ratio "${SECS[cairn_full]-}" "${SECS[pgbr_full]-}")"
  printf '| 1 stored bytes, MB | %s | %s | %s | %s |\n' "$(mb "${SIZE[cairn_full]-}")" "$(mb "${SIZE[pgbr_full]-}")" \
    "$(mb "${SIZE[basebackup_full]-}")" "$(ratio "${SIZE[cairn_full]-}" "${SIZE[pgbr_full]-}")"
  for ch in "${CHANGES[@]}"; do
    st=2$([[ $ch == tpcb ]] && echo a || echo b)
    printf '| %s second backup after %s (cold), s / RSS | %s | %s (incr) | | %s |\n' "$st" "$ch" \
      "$(cell "cairn_second_$ch")" "$(cell "pgbr_incr_$ch")" "$(ratio "${SECS[cairn_second_$ch]-}" "${SECS[pgbr_incr_$ch]-}")"
    printf '| %s new data / total, uncompressed MB | %s / %s = **%s** | %s / %s = %s (changed files) | | |\n' "$st" \
      "$(mb "${ADDED_RAW[$ch]-}")" "$(mb "${TOTAL[$ch]-}")" "$(pct "${ADDED_RAW[$ch]-}" "${TOTAL[$ch]-}")" \
      "$(mb "${PGBR_DELTA[$ch]-}")" "$(mb "${PGBR_SIZE[$ch]-}")" "$(pct "${PGBR_DELTA[$ch]-}" "${PGBR_SIZE[$ch]-}")"
    printf '| %s stored bytes, MB (%% of the full backup'"'"'s) | %s (%s) | %s (%s) | | %s |\n' "$st" \
      "$(mb "${SIZE[cairn_second_$ch]-}")" "$(pct "${SIZE[cairn_second_$ch]-}" "${SIZE[cairn_full]-}")" \
      "$(mb "${SIZE[pgbr_incr_$ch]-}")" "$(pct "${SIZE[pgbr_incr_$ch]-}" "${SIZE[pgbr_full]-}")" \
      "$(ratio "${SIZE[cairn_second_$ch]-}" "${SIZE[pgbr_incr_$ch]-}")"
  done
  printf '| 3 restore (cold), s / RSS | %s | %s | | **%s** |\n' "$(cell cairn_restore)" "$(cell pgbr_restore)" \
    "$(ratio "${SECS[cairn_restore]-}" "${SECS[pgbr_restore]-}")"
  printf '| 3 restored cluster = source | %s | %s | | |\n' "${VERIFIED[cairn_restore]-not run}" "${VERIFIED[pgbr_restore]-not run}"
  printf '| 4 logical backup (cold), s / RSS | %s | | %s (pg_dump -Fc) | %s (vs pg_dump) |\n' "$(cell cairn_logical)" "$(cell pg_dump)" \
    "$(ratio "${SECS[cairn_logical]-}" "${SECS[pg_dump]-}")"
  printf '| 4 stored bytes, MB | %s | | %s | %s (vs pg_dump) |\n' "$(mb "${SIZE[cairn_logical]-}")" "$(mb "${SIZE[pg_dump]-}")" \
    "$(ratio "${SIZE[cairn_logical]-}" "${SIZE[pg_dump]-}")"
  printf '| 5 wal-push, %s segments (%s MB), s / max RSS | %s | %s | | %s |\n' "$N_SEG" "$(mb "$SEG_BYTES")" \
    "$(cell cairn_walpush)" "$(cell pgbr_walpush)" "$(ratio "${SECS[cairn_walpush]-}" "${SECS[pgbr_walpush]-}")"
  printf '| 5 wal-push rate, segments/s | %s | %s | | **%s** (rate ratio) |\n' "$(rate cairn_walpush)" "$(rate pgbr_walpush)" \
    "$(ratio "$(rate cairn_walpush)" "$(rate pgbr_walpush)")"
  printf '| 5 stored bytes, MB | %s | %s | | %s |\n' "$(mb "${SIZE[cairn_walpush]-}")" "$(mb "${SIZE[pgbr_walpush]-}")" \
    "$(ratio "${SIZE[cairn_walpush]-}" "${SIZE[pgbr_walpush]-}")"
  printf '| 5 cairn wal-push --async (batches of 32) vs pgBackRest sync, s / rate | %s / %s seg/s | %s / %s seg/s | | **%s** (rate ratio) |\n\n' \
    "${SECS[cairn_walpush_async]-}" "$(rate cairn_walpush_async)" "${SECS[pgbr_walpush]-}" "$(rate pgbr_walpush)" \
    "$(ratio "$(rate cairn_walpush_async)" "$(rate pgbr_walpush)")"
  printf 'Targets (issue #5):\n\n'
  target() { # LABEL VALUE OP LIMIT
    local ok=n/a
    [[ -n $2 && $2 != n/a ]] && ok=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { r = (op == "<=") ? v <= l : (op == "<") ? v < l : v >= l; print r ? "met" : "MISSED" }')
    printf -- '- %s: %s (target %s %s): **%s**\n' "$1" "$2" "$3" "$4" "$ok"
  }
  target "physical backup time cairn/pgBackRest" "$(ratio "${SECS[cairn_full]-}" "${SECS[pgbr_full]-}")" '<=' 0.8
  target "restore time cairn/pgBackRest" "$(ratio "${SECS[cairn_restore]-}" "${SECS[pgbr_restore]-}")" '<=' 1.0
  target "wal-push rate cairn/pgBackRest" "$(ratio "$(rate cairn_walpush)" "$(rate pgbr_walpush)")" '>=' 1.0
  for ch in "${CHANGES[@]}"; do
    target "second base backup after $ch, new (uncompressed) data in % of total" \
      "$(pct "${ADDED_RAW[$ch]-}" "${TOTAL[$ch]-}" | cut -d' ' -f1)" '<' 10
  done
  printf '\nSizes: cairn = growth of its repository (`du -sb`), pgBackRest = `info` repository delta of the backup (WAL not\n'
  printf 'included), baselines = output size. RSS = peak resident set size in MiB (for step 5 the largest single process).\n'
  printf '1-minute load at the start of each step:'
  for s in pgbench_init basebackup_full cairn_full pgbr_full change_tpcb cairn_second_tpcb pgbr_incr_tpcb change_range cairn_second_range pgbr_incr_range cairn_restore pgbr_restore cairn_logical pg_dump cairn_walpush pgbr_walpush; do
    [[ -n ${LOAD[$s]-} ]] && printf ' %s %s;' "$s" "${LOAD[$s]}"
  done
  printf '\n'
  printf 'CPU seconds (user + sys) of the measured process and its children (the PostgreSQL server'"'"'s own work,\n'
  printf 'e.g. the walsender feeding pg_basebackup, is not included):'
  for s in basebackup_full cairn_full pgbr_full cairn_second_tpcb pgbr_incr_tpcb cairn_second_range pgbr_incr_range cairn_restore pgbr_restore cairn_logical pg_dump cairn_walpush pgbr_walpush; do
    [[ -n ${CPU_U[$s]-} ]] && printf ' %s %s;' "$s" "$(awk -v u="${CPU_U[$s]}" -v y="${CPU_S[$s]}" 'BEGIN { printf "%.2f", u + y }')"
  done
  printf '\n'
  if ((${#FAILURES[@]})); then
    printf '\n## FAILURES\n\n'
    printf -- '- %s\n' "${FAILURES[@]}"
  fi
} >"$RESULTS"
printf '\n'
cat "$RESULTS"
printf '\nwritten: %s; logs in %s\n' "$RESULTS" "$LOGS"
((${#FAILURES[@]} == 0)) || die "${#FAILURES[@]} failure(s)"
