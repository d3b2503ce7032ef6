#!/usr/bin/env bash
# bench/walpush.sh: cairn wal-push vs pgbackrest archive-push on real WAL
# segments, one process per segment, in one run (step 5 of bench/pg.sh alone,
# repeated).
#
#   setup   a throwaway PostgreSQL 15 cluster; pgbench -i -s SCALE while
#           archive_command keeps copies of the first N segments
#   rounds  ROUNDS times, alternating which tool goes first: every segment
#           pushed into a fresh cairn repository (key file: no KDF) with one
#           `cairn wal-push` process each, and into a fresh pgBackRest stanza
#           (zst level 3, aes-256-cbc, process-max default, archive-async=n)
#           with one `pgbackrest archive-push` each
#   output  per round and in total: seconds, segments/s, CPU seconds, and the
#           cairn/pgBackRest rate ratio (>= 1.0 is the target of issue #5)
#
# Usage: bench/walpush.sh [--scale N] [--segments N] [--rounds N] [--cairn-args "..."]
# Run as root (PostgreSQL runs as postgres through runuser).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=60
SEGMENTS=50
ROUNDS=3
CAIRN_ARGS=""
usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --segments) SEGMENTS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --cairn-args) CAIRN_ARGS=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
for v in SCALE SEGMENTS ROUNDS; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || { echo "--${v,,} must be a positive integer" >&2; exit 2; }
done

BENCH_DIR=${BENCH_DIR:-/var/tmp/cairn-walpush}
CAIRN_SRC=${CAIRN:-$ROOT/build/release/cairn}
PGBIN=/usr/lib/postgresql/15/bin
W=$BENCH_DIR/work
LOGS=$BENCH_DIR/logs
BIN=$BENCH_DIR/bin
SOCK=$W/sock
DATA=$W/data
WALSRC=$W/walsrc
STANZA=bench

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

(($(id -u) == 0)) || die "run as root (the server runs as postgres through runuser)"
[[ -x $PGBIN/initdb ]] || die "PostgreSQL 15 is missing: apt-get install postgresql-15"
need_pkg=()
command -v pgbackrest >/dev/null || need_pkg+=(pgbackrest)
[[ -x /usr/bin/time ]] || need_pkg+=(time)
if ((${#need_pkg[@]})); then
  log "installing ${need_pkg[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkg[@]}" >/dev/null
fi
[[ -x $CAIRN_SRC ]] || die "no cairn binary at $CAIRN_SRC (cmake --preset release && cmake --build build/release)"

SERVER_UP=0
cleanup() {
  ((SERVER_UP)) && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1
  SERVER_UP=0
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cleanup
rm -rf "$LOGS" "$BIN"
mkdir -p "$W" "$LOGS" "$BIN" "$SOCK" "$WALSRC"
chmod 755 "$BENCH_DIR" "$BIN"
chmod 700 "$W"
chown postgres: "$W" "$LOGS" "$SOCK" "$WALSRC"
cp "$CAIRN_SRC" "$BIN/cairn" # a private copy: rebuilding during the run changes nothing
chmod 755 "$BIN/cairn"
C=$BIN/cairn
CAIRN_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && CAIRN_COMMIT+="-dirty"

as_pg() { runuser -u postgres -- "$@"; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat >"$BIN/keep-wal.sh" <<EOF
#!/bin/sh
case \$(basename "\$1") in ????????????????????????) ;; *) exit 0 ;; esac
[ "\$(ls '$WALSRC' | wc -l)" -lt $SEGMENTS ] && cp "\$1" '$WALSRC/'
exit 0
EOF
chmod 755 "$BIN/keep-wal.sh"

UPTIME_START=$(uptime)
DATE_START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "start: $UPTIME_START"
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
SERVER_UP=1
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$LOGS/server.log" -w -t 300 start >/dev/null || die "server did not start"
log "pgbench -i -s $SCALE (collecting $SEGMENTS segments)"
as_pg "$PGBIN/pgbench" -i -s "$SCALE" -q -h "$SOCK" -p "$PORT" -U postgres postgres >"$LOGS/pgbench.log" 2>&1 || die "pgbench -i"
for _ in $(seq 1 600); do
  (($(ls "$WALSRC" | wc -l) >= SEGMENTS)) && break
  as_pg "$PGBIN/psql" -X -q -h "$SOCK" -p "$PORT" -U postgres -c 'SELECT pg_switch_wal()' postgres >/dev/null
  sleep 0.2
done
N_SEG=$(ls "$WALSRC" | wc -l)
SEG_BYTES=$(du -sb "$WALSRC" | cut -f1)
log "$N_SEG segments, $SEG_BYTES bytes"
cat "$WALSRC"/* >/dev/null # warm: both tools read from the page cache
if [[ -n ${SAVE_SEGMENTS:-} ]]; then mkdir -p "$SAVE_SEGMENTS" && cp "$WALSRC"/* "$SAVE_SEGMENTS/"; fi

write_pgbr_conf() { # FILE REPO_PATH
  {
    printf '[global]\nrepo1-path=%s\ncompress-type=zst\ncompress-level=3\narchive-async=n\n' "$2"
    printf 'log-level-console=warn\nlog-level-file=off\nlock-path=%s/pgbr-lock\nspool-path=%s/pgbr-spool\n' "$W" "$W"
    printf 'repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=bench-cipher-pass\n'
    printf '\n[%s]\npg1-path=%s\npg1-socket-path=%s\npg1-port=%s\npg1-user=postgres\n' "$STANZA" "$DATA" "$SOCK" "$PORT"
  } >"$1"
  chown postgres: "$1"
}

declare -A SECS CPU
run_timed() { # NAME CMD...
  local name=$1
  shift
  as_pg /usr/bin/time -o "$LOGS/$name.time" -f '%e %U %S' "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" ||
    die "$name failed: $(tail -n 5 "$LOGS/$name.err")"
  local e u s
  read -r e u s < <(tail -n 1 "$LOGS/$name.time")
  SECS[$name]=$e
  CPU[$name]=$(echo "$u + $s" | bc)
  log "$name: $e s, CPU $u user + $s sys"
}

cairn_round() { # ROUND
  local repo=$W/cairn-repo-$1 key=$W/cairn-$1.key
  as_pg env CAIRN_PASSWORD=bench "$C" --no-progress init --repo "$repo" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn init"
  as_pg env CAIRN_PASSWORD=bench "$C" --no-progress --repo "$repo" key add --new-key-file "$key" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn key add"
  # shellcheck disable=SC2086
  run_timed "cairn_$1" sh -c 'for f in "$0"/*; do "$1" --key-file "$2" --repo "$3" wal-push --service "$4" '"$CAIRN_ARGS"' "$f" || exit 1; done' \
    "$WALSRC" "$C" "$key" "$repo" $STANZA
}
pgbr_round() { # ROUND
  local conf=$W/pgbackrest-$1.conf
  write_pgbr_conf "$conf" "$W/pgbr-repo-$1"
  as_pg pgbackrest --config="$conf" --stanza=$STANZA stanza-create >>"$LOGS/pgbr-stanza.log" 2>&1 || die "stanza-create"
  run_timed "pgbr_$1" sh -c 'for f in "$0"/*; do pgbackrest --config="$1" --stanza="$2" archive-push "$f" || exit 1; done' \
    "$WALSRC" "$conf" $STANZA
}

# fsync calls of one push per tool (strace, into throwaway repositories):
# under I/O load each one can wait for the whole journal.
FSYNCS="strace missing"
if command -v strace >/dev/null; then
  first=$(ls "$WALSRC" | head -n 1)
  as_pg env CAIRN_PASSWORD=bench "$C" --no-progress init --repo "$W/cairn-repo-fs" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn init"
  as_pg env CAIRN_PASSWORD=bench "$C" --no-progress --repo "$W/cairn-repo-fs" key add --new-key-file "$W/cairn-fs.key" >>"$LOGS/cairn-init.log" 2>&1 || die "cairn key add"
  as_pg strace -f -e trace=fsync,fdatasync,sync_file_range -o "$LOGS/cairn.strace" "$C" --key-file "$W/cairn-fs.key" \
    --repo "$W/cairn-repo-fs" wal-push --service $STANZA "$WALSRC/$first" || die "cairn wal-push under strace"
  write_pgbr_conf "$W/pgbackrest-fs.conf" "$W/pgbr-repo-fs"
  as_pg pgbackrest --config="$W/pgbackrest-fs.conf" --stanza=$STANZA stanza-create >>"$LOGS/pgbr-stanza.log" 2>&1 || die "stanza-create"
  as_pg strace -f -e trace=fsync,fdatasync,sync_file_range -o "$LOGS/pgbr.strace" pgbackrest --config="$W/pgbackrest-fs.conf" \
    --stanza=$STANZA archive-push "$WALSRC/$first" || die "archive-push under strace"
  FSYNCS="cairn $(grep -c 'sync' "$LOGS/cairn.strace"), pgBackRest $(grep -c 'sync' "$LOGS/pgbr.strace")"
fi

for r in $(seq 1 "$ROUNDS"); do
  if ((r % 2)); then cairn_round "$r"; pgbr_round "$r"; else pgbr_round "$r"; cairn_round "$r"; fi
done
UPTIME_END=$(uptime)

rate() { echo "scale=1; $N_SEG / $1" | bc; }
{
  printf '# wal-push: cairn vs pgBackRest archive-push\n\n'
  printf -- '- %s, cairn %s, %s segments (%s bytes), %s rounds\n' "$DATE_START" "$CAIRN_COMMIT" "$N_SEG" "$SEG_BYTES" "$ROUNDS"
  printf -- '- load at start: %s\n- load at end:   %s\n\n' "${UPTIME_START##*load average: }" "${UPTIME_END##*load average: }"
  printf '| round | cairn s / seg/s / CPU s | pgBackRest s / seg/s / CPU s | rate ratio cairn/pgBackRest |\n|---|---:|---:|---:|\n'
  tc=0 tp=0 cc=0 cp=0
  for r in $(seq 1 "$ROUNDS"); do
    c=${SECS[cairn_$r]} p=${SECS[pgbr_$r]}
    printf '| %s | %s / %s / %s | %s / %s / %s | %s |\n' "$r" "$c" "$(rate "$c")" "${CPU[cairn_$r]}" \
      "$p" "$(rate "$p")" "${CPU[pgbr_$r]}" "$(echo "scale=2; $p / $c" | bc)"
    tc=$(echo "$tc + $c" | bc) tp=$(echo "$tp + $p" | bc)
    cc=$(echo "$cc + ${CPU[cairn_$r]}" | bc) cp=$(echo "$cp + ${CPU[pgbr_$r]}" | bc)
  done
  printf '| all | %s / %s / %s | %s / %s / %s | **%s** |\n\n' "$tc" "$(echo "scale=1; $N_SEG * $ROUNDS / $tc" | bc)" "$cc" \
    "$tp" "$(echo "scale=1; $N_SEG * $ROUNDS / $tp" | bc)" "$cp" "$(echo "scale=2; $tp / $tc" | bc)"
  printf 'fsync calls per push: %s\n' "$FSYNCS"
  printf 'CPU per segment: cairn %s ms, pgBackRest %s ms\n' "$(echo "$cc * 1000 / ($N_SEG * $ROUNDS)" | bc)" \
    "$(echo "$cp * 1000 / ($N_SEG * $ROUNDS)" | bc)"
} | tee "$BENCH_DIR/results.md"
