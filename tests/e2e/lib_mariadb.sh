# A real MariaDB 10.11 for the engine and drill tests. Source after lib.sh;
# skips the test when MariaDB is missing. Defines start_mariadb NAME (a
# server in $T/NAME with a binlog; sets SOCK_<NAME>, PORT_<NAME>, PID_<NAME>,
# DATA_<NAME>) and M SOCKET SQL... (runs SQL as root).
# shellcheck shell=bash
MARIADBD=/usr/sbin/mariadbd
if [ ! -x "$MARIADBD" ] || ! command -v mariadb-dump >/dev/null; then
  skip "MariaDB is not installed (apt-get install mariadb-server mariadb-backup mariadb-client; scripts/setup does)"
  exit 0
fi
chmod 755 "$T"
as_server=()
[ "$(id -u)" -eq 0 ] && as_server=(--user=mysql)

# start_mariadb NAME [MARIADBD OPTION...]: a server in $T/NAME on a free port
# with its socket there and a binlog (unless an option says --skip-log-bin);
# sets SOCK_<NAME>, PORT_<NAME>, PID_<NAME>, DATA_<NAME>.
start_mariadb() {
  local name=$1 dir=$T/$1 port pid
  shift
  # A private tmpdir: servers bootstrapped at the same time in the shared
  # /tmp remove each other's temporary tables and the install fails.
  mkdir -p "$dir/tmp"
  [ "$(id -u)" -eq 0 ] && chown mysql "$dir" "$dir/tmp"
  mariadb-install-db --no-defaults --datadir="$dir/data" "${as_server[@]}" --skip-test-db \
    --auth-root-authentication-method=socket --tmpdir="$dir/tmp" >"$dir/install.log" 2>&1 ||
    fail "mariadb-install-db: $(grep -m5 -E 'ERROR|Error' "$dir/install.log")"
  port=$(free_port)
  "$MARIADBD" --no-defaults --datadir="$dir/data" --socket="$dir/sock" --port="$port" \
    --bind-address=127.0.0.1 --log-bin="$dir/data/binlog" --server-id=1 --pid-file="$dir/pid" \
    --log-error="$dir/error.log" --tmpdir="$dir/tmp" --innodb-buffer-pool-size=32M "${as_server[@]}" "$@" >/dev/null 2>&1 &
  pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  for _ in $(seq 1 300); do
    mariadb-admin --no-defaults -S "$dir/sock" -uroot ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || fail "mariadbd $name exited: $(tail -20 "$dir/error.log")"
    sleep 0.1
  done
  printf -v "SOCK_$name" %s "$dir/sock"
  printf -v "PORT_$name" %s "$port"
  printf -v "PID_$name" %s "$pid"
  printf -v "DATA_$name" %s "$dir/data"
}
M() {  # M SOCKET SQL...: runs SQL as root, prints rows tab-separated
  local sock=$1
  shift
  mariadb --no-defaults -S "$sock" -uroot --batch --skip-column-names "$@"
}

# assert_same_databases SOURCE_SOCK COPY_SOCK DATABASE...: mariadb-dump of
# both servers (rows in primary key order, AUTO_INCREMENT counters left out)
# is identical: tables, rows, routines, triggers, events, views.
_dump_for_comparison() {  # SOCK DATABASE...
  mariadb-dump --no-defaults -S "$1" -uroot --skip-dump-date --skip-comments --routines --triggers --events \
    --hex-blob --order-by-primary --databases "${@:2}" | sed 's/ AUTO_INCREMENT=[0-9]*//'
}
assert_same_databases() {
  local src=$1 copy=$2
  shift 2
  _dump_for_comparison "$src" "$@" >"$T/src.sql" || fail "dump of the source for comparison"
  _dump_for_comparison "$copy" "$@" >"$T/copy.sql" || fail "dump of the copy for comparison"
  cmp -s "$T/src.sql" "$T/copy.sql" || { diff "$T/src.sql" "$T/copy.sql" | head -20; fail "restored databases differ"; }
}

# assert_shop_objects_work SOURCE_SOCK COPY_SOCK: the shop schema of the
# MariaDB tests (function total, procedure add_item, a trigger writing to
# audit, event nightly) works in the copy as in the source.
assert_shop_objects_work() {
  local src=$1 copy=$2
  assert_eq "$(M "$src" -e "SELECT shop.total()")" "$(M "$copy" -e "SELECT shop.total()")" "function result"
  M "$copy" -e "CALL shop.add_item('after restore')" || fail "procedure after restore"
  assert_eq insert "$(M "$copy" -e "SELECT what FROM shop.audit ORDER BY id DESC LIMIT 1")" "trigger after restore"
  assert_eq nightly "$(M "$copy" -e "SELECT event_name FROM information_schema.events")" "event"
}
