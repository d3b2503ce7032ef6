# MariaDB engine against real MariaDB 10.11 servers started here: a logical
# round trip of many column types, routines, a trigger, an event and a view;
# binlog archiving (idempotent, from the data directory or fetched from the
# server, a gap is an error, a restarted numbering is an error); point-in-time
# restores by time and by position into fresh servers that hold exactly the
# rows committed up to the target; a physical backup restored into a data
# directory with binlog replay; a wrong password, a policy typo and a server
# killed during a dump, none of which writes a snapshot.
# Usage: bash tests/e2e/test_mariadb.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

# shellcheck source-path=SCRIPTDIR source=lib_mariadb.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib_mariadb.sh"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }

step "source server, schema with many types, routines, a trigger, an event, a view"
start_mariadb src
S=$SOCK_src
M "$S" <<'SQL' || fail "schema"
CREATE DATABASE shop CHARACTER SET utf8mb4;
CREATE DATABASE stats;
USE shop;
CREATE TABLE items (
  id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, price DECIMAL(12,2), weight DOUBLE,
  ratio FLOAT, flags BIT(8), tiny TINYINT UNSIGNED, big BIGINT, kind ENUM('a','b','c'), tags SET('x','y','z'),
  born DATE, at_time TIME(3), made DATETIME(6), touched TIMESTAMP(6) NULL, yr YEAR, note TEXT, raw BLOB,
  fixed BINARY(4), doc JSON, uid UUID, ip INET6, spot POINT, nothing INT NULL,
  INDEX (name), CHECK (price >= 0)
) ENGINE=InnoDB;
INSERT INTO items (name, price, weight, ratio, flags, tiny, big, kind, tags, born, at_time, made, touched, yr,
                   note, raw, fixed, doc, uid, ip, spot)
SELECT CONCAT('item ', seq, ' é中😀'), seq * 1.25, seq / 3, seq / 7, seq % 256, seq % 200, seq * 1000000007,
       ELT(1 + seq % 3, 'a', 'b', 'c'), 'x,z', '2024-02-29' + INTERVAL seq DAY, '12:34:56.789',
       '2026-11-25 10:31:00.123456', '2026-01-01 00:00:00', 1901 + seq % 150,
       REPEAT('long text ', seq % 50), UNHEX(SHA2(seq, 256)), UNHEX('00ff10e5'),
       JSON_OBJECT('i', seq, 'a', JSON_ARRAY(1, 'two', NULL)), UUID(), '2001:db8::1', POINT(seq, -seq)
FROM seq_1_to_3000;
INSERT INTO items (name, raw) VALUES ('quotes \' " \\ \t newline\nend', UNHEX('000102'));
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item INT, what VARCHAR(20)) ENGINE=InnoDB;
CREATE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item, what) VALUES (NEW.id, 'insert');
DELIMITER //
CREATE PROCEDURE add_item(IN n VARCHAR(100)) BEGIN INSERT INTO items (name) VALUES (n); END //
CREATE FUNCTION total() RETURNS DECIMAL(20,2) READS SQL DATA RETURN (SELECT SUM(price) FROM items) //
DELIMITER ;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;
CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10;
CALL add_item('from a procedure');
CREATE TABLE ticks (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL) ENGINE=InnoDB;
CREATE TABLE stats.counters (k VARCHAR(20) PRIMARY KEY, v BIGINT) ENGINE=InnoDB;
INSERT INTO stats.counters VALUES ('a', 1), ('b', 2);
CREATE USER 'bk'@'localhost' IDENTIFIED BY 'backup-secret';
GRANT ALL ON *.* TO 'bk'@'localhost';
SQL
echo "backup-secret" >"$T/bk.pw"
chmod 600 "$T/bk.pw"
export MDB_PASSWORD=backup-secret

cat >"$T/cairn.yaml" <<YAML
repository: $REPO
services:
  shop:
    owner: team-shop
    objectives: { rpo: 5m, rto: 1h }
    schedule: "0 3 * * *"
    engine:
      type: mariadb
      socket: $S
      user: bk
      password: \${MDB_PASSWORD}
      binlog_archiving: true
YAML
C() { cairn --config "$T/cairn.yaml" "$@"; }
expect_exit 0 C policy validate

step "policy typo: exit 2, the key named with a suggestion, no snapshot"
sed 's/binlog_archiving: true/binlog_archving: true/' "$T/cairn.yaml" >"$T/typo.yaml"
expect_exit 2 cairn --config "$T/typo.yaml" policy validate
assert_contains "$ERR$OUT" 'unknown key "binlog_archving" (did you mean "binlog_archiving"?)'
expect_exit 2 cairn --config "$T/typo.yaml" backup --service shop
sed 's/password: .*/password: backup-secret/' "$T/cairn.yaml" >"$T/inline.yaml"
expect_exit 2 cairn --config "$T/inline.yaml" policy validate
assert_contains "$ERR$OUT" "secret is written inline"
assert_eq 0 "$(snapshot_count "$REPO")" "snapshots after policy errors"

step "wrong password: exit 1, service named, no snapshot"
MDB_PASSWORD=wrong expect_exit 1 C backup --service shop
assert_contains "$ERR" "service shop"
assert_contains "$ERR" "Access denied"
assert_not_contains "$ERR" "wrong" "the password in a message"
assert_eq 0 "$(snapshot_count "$REPO")" "snapshots after a wrong password"

step "timestamped writer, logical base backup from the policy while it writes"
tick() { M "$S" -e "INSERT INTO shop.ticks VALUES ($1, NOW(6))"; }
for i in $(seq 1 10); do tick "$i"; sleep 0.05; done
( for i in $(seq 11 20); do tick "$i"; sleep 0.1; done ) &
writer=$!
expect_exit 0 C --json backup --service shop
base_id=$(jq -r .snapshot_id <<<"$OUT")
wait "$writer" || fail "writer"
R --json snapshots >"$T/snaps.json"
assert_eq logical "$(json_get "$T/snaps.json" '.[0].engine.mode')" "engine mode"
assert_eq mariadb "$(json_get "$T/snaps.json" '.[0].engine.type')" "engine type"
binlog_file=$(json_get "$T/snaps.json" '.[0].engine.binlog_file')
[[ $binlog_file == binlog.0000* ]] || fail "no binlog file recorded: $(cat "$T/snaps.json")"
[[ $(json_get "$T/snaps.json" '.[0].engine.binlog_position') -gt 4 ]] || fail "no binlog position recorded"
assert_contains "$(json_get "$T/snaps.json" '.[0].engine.server_version')" "MariaDB"
assert_eq '["shop","stats"]' "$(json_get "$T/snaps.json" '.[0].engine.databases' | jq -c .)" "databases"
expect_exit 0 R ls "$base_id"
assert_contains "$OUT" "/dump.sql"
assert_contains "$OUT" "/users.sql"
for i in $(seq 21 30); do tick "$i"; sleep 0.05; done
# T: the first whole second after row 30; rows from 31 on come a second later.
S30=$(M "$S" -e "SELECT FLOOR(UNIX_TIMESTAMP(ts)) + 1 FROM shop.ticks WHERE id = 30")
while (($(date +%s) < S30 + 1)); do sleep 0.1; done
sleep 0.3
TARGET=$(date -u -d "@$S30" +%Y-%m-%dT%H:%M:%SZ)
for i in $(seq 31 35); do tick "$i"; done
POS35=$(M "$S" -e "SHOW MASTER STATUS" | awk '{print $1 ":" $2}')
for i in $(seq 36 40); do tick "$i"; done
M "$S" -e "INSERT INTO stats.counters VALUES ('c', 3)"

step "binlog-sync: archives closed files, idempotent, --flush closes the current one"
expect_exit 0 C --json mariadb binlog-sync --service shop
first_pushed=$(jq '.pushed | length' <<<"$OUT")
expect_exit 0 C --json mariadb binlog-sync --service shop --flush
assert_eq true "$(jq .ok <<<"$OUT")" "sync ok"
[[ $(jq '.pushed | length' <<<"$OUT") -ge 1 ]] || fail "--flush archived nothing: $OUT"
newest=$(jq -r .newest_archived <<<"$OUT")
expect_exit 0 C --json mariadb binlog-sync --service shop
assert_eq 0 "$(jq '.pushed | length' <<<"$OUT")" "files pushed by a repeated sync"
echo "  first sync pushed $first_pushed file(s); newest archived $newest"
# The archived copy is the server's file, byte for byte.
expect_exit 0 R wal-get --service shop "$newest" "$T/fetched.binlog"
assert_file_same "$DATA_src/$newest" "$T/fetched.binlog"

step "point-in-time restore by time into a fresh server: exactly rows 1..30"
start_mariadb pitr
expect_exit 0 R --json mariadb restore --service shop --socket "$SOCK_pitr" --to-time "$TARGET"
assert_eq "$base_id" "$(jq -r .base <<<"$OUT")" "base chosen"
ids=$(M "$SOCK_pitr" -e "SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.ticks")
assert_eq "$(seq -s, 1 30)" "$ids" "rows after a restore to $TARGET"
assert_eq 2 "$(M "$SOCK_pitr" -e "SELECT COUNT(*) FROM stats.counters")" "counters at the target"

step "point-in-time restore by position: exactly rows 1..35"
start_mariadb pos
expect_exit 0 R mariadb restore --service shop --socket "$SOCK_pos" --to-position "$POS35"
assert_eq "$(seq -s, 1 35)" "$(M "$SOCK_pos" -e "SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.ticks")" \
  "rows after a restore to $POS35"

step "restore to the latest archived point: every row, and the same schema and data as the source"
start_mariadb latest
expect_exit 0 R mariadb restore --service shop --socket "$SOCK_latest" --with-users
assert_eq "$(seq -s, 1 40)" "$(M "$SOCK_latest" -e "SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.ticks")" "rows (latest)"
assert_same_databases "$S" "$SOCK_latest" shop stats
assert_shop_objects_work "$S" "$SOCK_latest"
assert_eq 1 "$(M "$SOCK_latest" -e "SELECT COUNT(*) FROM mysql.user WHERE user = 'bk'")" "users.sql restored"

step "a target the archive does not reach, or before every base: exit 1, nothing claimed"
start_mariadb short
expect_exit 1 R mariadb restore --service shop --socket "$SOCK_short" --to-time "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
assert_contains "$ERR" "binlog-sync"
expect_exit 1 R mariadb restore --service shop --socket "$SOCK_short" --to-time 2001-01-01T00:00:00Z
assert_contains "$ERR" "precedes"
expect_exit 2 R mariadb restore --service shop --socket "$SOCK_short" --to-position nonsense

step "physical backup, restore into a data directory with binlog replay"
expect_exit 0 R --json mariadb backup --service shop --mode physical --socket "$S"
phys_id=$(jq -r .snapshot_id <<<"$OUT")
[[ $(jq -r .engine.binlog_file <<<"$OUT") == binlog.* ]] || fail "physical backup without a binlog position: $OUT"
for i in $(seq 41 45); do tick "$i"; done
expect_exit 0 C mariadb binlog-sync --service shop --flush
expect_exit 0 R --json mariadb restore --service shop --target-dir "$T/phys/data"
assert_eq "$phys_id" "$(jq -r .base <<<"$OUT")" "physical base chosen"
mkdir -p "$T/phys2"
[ "$(id -u)" -eq 0 ] && chown mysql "$T/phys" "$T/phys2"
"$MARIADBD" --no-defaults --datadir="$T/phys/data" --socket="$T/phys2/sock" --skip-networking \
  --log-error="$T/phys2/error.log" "${as_server[@]}" >/dev/null 2>&1 &
ppid=$!
on_exit "kill $ppid 2>/dev/null; wait $ppid 2>/dev/null"
for _ in $(seq 1 300); do mariadb-admin --no-defaults -S "$T/phys2/sock" -uroot ping >/dev/null 2>&1 && break; sleep 0.1; done
assert_eq "$(seq -s, 1 45)" "$(M "$T/phys2/sock" -e "SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.ticks")" \
  "rows in the physical restore"

step "remote binlog fetch gives the same archive"
expect_exit 0 R --json mariadb binlog-sync --service shop-remote --socket "$S" --remote
[[ $(jq '.pushed | length' <<<"$OUT") -ge 2 ]] || fail "remote sync pushed too little: $OUT"
expect_exit 0 R wal-get --service shop-remote "$newest" "$T/remote.binlog"
assert_file_same "$DATA_src/$newest" "$T/remote.binlog"

step "a purged, never archived binlog is a gap: exit 1"
M "$S" -e "FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS"
last=$(M "$S" -e "SHOW BINARY LOGS" | tail -1 | cut -f1)
# A file InnoDB still needs (binlog checkpoint not written yet) is kept: retry.
for _ in $(seq 1 100); do
  M "$S" -e "PURGE BINARY LOGS TO '$last'"
  [ "$(M "$S" -e "SHOW BINARY LOGS" | head -1 | cut -f1)" = "$last" ] && break
  sleep 0.1
done
[ "$(M "$S" -e "SHOW BINARY LOGS" | head -1 | cut -f1)" = "$last" ] || fail "PURGE BINARY LOGS did not purge"
M "$S" -e "FLUSH BINARY LOGS"
expect_exit 1 C mariadb binlog-sync --service shop
assert_contains "$ERR" "gap"

step "restarted binlog numbering (RESET MASTER): a name with other content is refused"
M "$S" -e "RESET MASTER; INSERT INTO shop.ticks VALUES (1000, NOW(6)); FLUSH BINARY LOGS"
expect_exit 1 C mariadb binlog-sync --service shop
assert_contains "$ERR" "binlog.000001"

step "server killed during a dump of a bigger table: exit 1, no snapshot"
M "$S" -e "CREATE TABLE shop.big (id INT PRIMARY KEY, pad CHAR(200)) SELECT seq AS id, REPEAT('p', 200) AS pad FROM shop.seq_1_to_400000"
n=$(snapshot_count "$REPO")
( rc=0; C backup --service shop >"$T/killed.out" 2>&1 || rc=$?; echo $rc >"$T/killed.rc" ) &
bg=$!
for _ in $(seq 1 400); do pgrep -f "mariadb-dump.*--single-transaction" >/dev/null && break; sleep 0.02; done
kill -9 "$PID_src"
wait "$bg"
assert_eq 1 "$(cat "$T/killed.rc")" "exit code of a dump whose server died"
assert_contains "$(cat "$T/killed.out")" "service shop"
assert_contains "$(cat "$T/killed.out")" "no snapshot written"
assert_eq "$n" "$(snapshot_count "$REPO")" "snapshots after a dump whose server died"
expect_exit 0 R check
