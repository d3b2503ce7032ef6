#!/usr/bin/env bash
# bench/engines.sh: cairn's mariadb engine against the bare tools, on one
# machine, one database, one run.
#
#   logical   cairn mariadb backup (logical)  vs  mariadb-dump ... | zstd -3 > file
#   logical, 4 streams   cairn mariadb backup --parallel 4  vs  the same bare dump
#   restore   cairn mariadb restore of each logical backup into an empty server
#             vs  zstd -dc file | mariadb  (BENCH_RESTORE=0 skips these rows)
#   physical  cairn mariadb backup --mode physical  vs  mariadb-backup --backup --target-dir DIR
#   daily     a second physical backup after 1 % of the rows (the newest) changed:
#             data added by cairn relative to the first backup's stored size
#
# A throwaway mariadbd (temp datadir owned by mysql, free port and socket,
# --log-bin) gets a database of about BENCH_DB_MB megabytes (default 1000):
# four InnoDB tables of random-ish rows, of equal size. Each step is timed with /usr/bin/time
# (wall seconds, peak RSS); page caches are dropped before each step when
# run as root. Prints a Markdown table with the ratios cairn / bare tool.
#
# Environment:
#   BENCH_DIR     work folder (default /var/tmp/cairn-bench-engines; removed at the end)
#   BENCH_DB_MB   database size in MB (default 1000)
#   BENCH_RESTORE 1 (default) or 0: time the logical restores too
#   CAIRN         cairn binary (default <repo>/build/release/cairn)
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN=${CAIRN:-$PWD/build/release/cairn}
DIR=${BENCH_DIR:-/var/tmp/cairn-bench-engines}
MB=${BENCH_DB_MB:-1000}
RESTORE=${BENCH_RESTORE:-1}
[[ -x $CAIRN ]] || { echo "engines.sh: build cairn first ($CAIRN)" >&2; exit 2; }
command -v mariadb-dump >/dev/null && [[ -x /usr/sbin/mariadbd ]] ||
  { echo "engines.sh: needs mariadb-server mariadb-backup mariadb-client" >&2; exit 2; }
rm -rf "$DIR"
mkdir -p "$DIR"
chmod 755 "$DIR"
user=()
if [ "$(id -u)" -eq 0 ]; then
  chown mysql "$DIR"
  user=(--user=mysql)
fi
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT

server() {  # server NAME: an empty mariadbd with its socket at $DIR/NAME.sock
  mariadb-install-db --no-defaults --datadir="$DIR/$1" "${user[@]}" --skip-test-db \
    --auth-root-authentication-method=socket >"$DIR/$1-install.log" 2>&1
  /usr/sbin/mariadbd --no-defaults --datadir="$DIR/$1" --socket="$DIR/$1.sock" --skip-networking \
    --log-bin="$DIR/$1/binlog" --server-id=1 --log-error="$DIR/$1-error.log" \
    --innodb-buffer-pool-size=256M "${user[@]}" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do mariadb-admin --no-defaults -S "$DIR/$1.sock" -uroot ping >/dev/null 2>&1 && break; sleep 0.1; done
}
server data
M() { mariadb --no-defaults -S "$DIR/data.sock" -uroot --batch --skip-column-names "$@"; }

rows=$((MB * 1000000 / 260 / 4))
echo "engines.sh: building a ~${MB} MB database (4 tables of $rows rows)" >&2
M -e "CREATE DATABASE bench"
step=1000000
for t in 1 2 3 4; do
  M -e "CREATE TABLE bench.t$t (id INT PRIMARY KEY, k INT, s CHAR(60), pad VARCHAR(200), INDEX (k)) ENGINE=InnoDB"
  for ((lo = 1; lo <= rows; lo += step)); do
    hi=$((lo + step - 1 < rows ? lo + step - 1 : rows))
    M -e "INSERT INTO bench.t$t SELECT seq, FLOOR(RAND(seq * $t) * 1000000), MD5(seq * $t), CONCAT(SHA2(seq * $t, 256), REPEAT(CHAR(65 + seq % 26), 100 + seq % 36)) FROM bench.seq_${lo}_to_${hi}"
  done
done
M -e "ANALYZE TABLE bench.t1, bench.t2, bench.t3, bench.t4" >/dev/null
size=$(du -sm "$DIR/data/bench" | cut -f1)

export CAIRN_PASSWORD=bench
"$CAIRN" --repo "$DIR/repo" init --kdf-iterations 1 --kdf-memory 8 >/dev/null
drop() { [ "$(id -u)" -eq 0 ] && sync && echo 3 >/proc/sys/vm/drop_caches || true; }
timed() {  # timed NAME cmd...: appends "NAME seconds rss_kb" to $DIR/times
  local name=$1
  shift
  drop
  /usr/bin/time -f "$name %e %M" -a -o "$DIR/times" "$@"
}
timed dump_zstd bash -c "mariadb-dump --no-defaults -S '$DIR/data.sock' -uroot --single-transaction --routines --triggers --events --hex-blob --master-data=2 --databases bench | zstd -q -3 -T0 >'$DIR/dump.sql.zst'"
timed cairn_logical "$CAIRN" --repo "$DIR/repo" --no-progress --json mariadb backup --service bench --socket "$DIR/data.sock" --user root --no-users >"$DIR/logical.json"
timed cairn_logical_par "$CAIRN" --repo "$DIR/repo" --no-progress --json mariadb backup --service bench --socket "$DIR/data.sock" --user root --no-users --parallel 4 >"$DIR/parallel.json"
if [[ $RESTORE == 1 ]]; then
  for r in bare single parallel; do server "restore-$r"; done
  timed restore_bare bash -c "zstd -dc '$DIR/dump.sql.zst' | mariadb --no-defaults -S '$DIR/restore-bare.sock' -uroot --binary-mode"
  timed restore_single "$CAIRN" --repo "$DIR/repo" --no-progress mariadb restore --service bench --base-only \
    --snapshot "$(jq -r .snapshot_id "$DIR/logical.json")" --socket "$DIR/restore-single.sock"
  timed restore_parallel "$CAIRN" --repo "$DIR/repo" --no-progress mariadb restore --service bench --base-only \
    --snapshot "$(jq -r .snapshot_id "$DIR/parallel.json")" --socket "$DIR/restore-parallel.sock"
  for r in bare single parallel; do
    [[ $(mariadb --no-defaults -S "$DIR/restore-$r.sock" -uroot -N -e "SELECT COUNT(*) FROM bench.t4") == "$rows" ]] ||
      { echo "engines.sh: the $r restore lost rows" >&2; exit 1; }
  done
fi
timed mariabackup mariadb-backup --no-defaults --backup --socket="$DIR/data.sock" --user=root --target-dir="$DIR/mb" 2>"$DIR/mb.log"
timed cairn_physical "$CAIRN" --repo "$DIR/repo" --no-progress --json mariadb backup --service bench-phys --mode physical --socket "$DIR/data.sock" >"$DIR/phys1.json"
# 1 % of the rows, contiguous (recent rows): an UPDATE of every 100th row
# would touch every page (~60 rows each), i.e. 100 % of the data.
M -e "UPDATE bench.t4 SET k = k + 1 WHERE id > $((rows - rows * 4 / 100))"
timed cairn_physical_daily "$CAIRN" --repo "$DIR/repo" --no-progress --json mariadb backup --service bench-phys --mode physical --socket "$DIR/data.sock" >"$DIR/phys2.json"

t() { awk -v n="$1" '$1 == n { print $2 }' "$DIR/times"; }
r() { awk -v n="$1" '$1 == n { print $3 }' "$DIR/times"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
total1=$(jq .summary.total_bytes "$DIR/phys1.json")
added2=$(jq .summary.data_added "$DIR/phys2.json")
cat <<MD
Database: ${size} MB on disk (InnoDB, 4 tables of $rows rows), MariaDB $(M -e "SELECT VERSION()"), $(nproc) cores.

| step | bare tool (s, RSS KB) | cairn (s, RSS KB) | cairn / bare |
|---|---|---|---|
| logical | mariadb-dump \| zstd -3: $(t dump_zstd) s, $(du -m "$DIR/dump.sql.zst" | cut -f1) MB | $(t cairn_logical) s, $(r cairn_logical) KB | $(ratio "$(t cairn_logical)" "$(t dump_zstd)") |
| logical, 4 streams | mariadb-dump \| zstd -3: $(t dump_zstd) s | $(t cairn_logical_par) s, $(r cairn_logical_par) KB | $(ratio "$(t cairn_logical_par)" "$(t dump_zstd)") |
$(if [[ $RESTORE == 1 ]]; then
  echo "| restore logical | zstd -dc \| mariadb: $(t restore_bare) s | $(t restore_single) s, $(r restore_single) KB | $(ratio "$(t restore_single)" "$(t restore_bare)") |"
  echo "| restore logical, 4 streams | zstd -dc \| mariadb: $(t restore_bare) s | $(t restore_parallel) s, $(r restore_parallel) KB | $(ratio "$(t restore_parallel)" "$(t restore_bare)") |"
fi)
| physical | mariadb-backup to a dir: $(t mariabackup) s | $(t cairn_physical) s, $(r cairn_physical) KB | $(ratio "$(t cairn_physical)" "$(t mariabackup)") |

Daily physical backup after 1 % of rows changed: cairn added $((added2 / 1000000)) MB,
$(ratio "$((added2 * 100))" "$total1") % of the first backup's $((total1 / 1000000)) MB stream ($(t cairn_physical_daily) s).
MD
