# Parallel logical MariaDB dumps against real MariaDB 10.11 servers: streams
# over disjoint table sets that show one state. A writer moves money between
# two tables (and logs each move in a third) in single transactions while a
# 3-stream backup runs; the three tables land in different streams, and the
# restored copy still balances. A quiet backup restores to exactly the
# source (tables, views, routines, triggers, events, odd table names). Bad
# cases: a server without binlog, a user without RELOAD, a dump stream
# killed mid-way: exit 1, no snapshot, and commits are not left blocked;
# nor are they when cairn itself is killed with SIGKILL.
# Usage: bash tests/e2e/test_mariadb_parallel.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib_mariadb.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib_mariadb.sh"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }

step "source server: three big tables a transfer touches, small ones, views, routines, a trigger, an event"
start_mariadb src
S=$SOCK_src
M "$S" <<'SQL' >/dev/null || fail "schema"
CREATE DATABASE bank;
CREATE DATABASE shop;
USE bank;
CREATE TABLE acct_a (id INT PRIMARY KEY, bal BIGINT NOT NULL, pad CHAR(200)) ENGINE=InnoDB;
CREATE TABLE acct_b (id INT PRIMARY KEY, bal BIGINT NOT NULL, pad CHAR(200)) ENGINE=InnoDB;
CREATE TABLE ledger (id INT AUTO_INCREMENT PRIMARY KEY, amount INT NOT NULL, pad CHAR(200)) ENGINE=InnoDB;
INSERT INTO acct_a SELECT seq, 1000, REPEAT('a', 200) FROM seq_1_to_30000;
INSERT INTO acct_b SELECT seq, 0, REPEAT('b', 200) FROM seq_1_to_25000;
INSERT INTO ledger (amount, pad) SELECT 0, REPEAT('l', 200) FROM seq_1_to_20000;
ANALYZE TABLE acct_a, acct_b, ledger;
USE shop;
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, price DECIMAL(12,2),
                    raw BLOB, doc JSON) ENGINE=InnoDB;
INSERT INTO items (name, price, raw, doc)
SELECT CONCAT('item ', seq, ' é中😀'), seq * 1.25, UNHEX(SHA2(seq, 256)), JSON_OBJECT('i', seq) FROM seq_1_to_500;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item INT, what VARCHAR(20)) ENGINE=InnoDB;
CREATE TABLE `odd name.with dot` (k VARCHAR(10) PRIMARY KEY, `tab	col` INT) ENGINE=InnoDB;
INSERT INTO `odd name.with dot` VALUES ('x', 1), ('y', 2);
CREATE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item, what) VALUES (NEW.id, 'insert');
DELIMITER //
CREATE FUNCTION total() RETURNS DECIMAL(20,2) READS SQL DATA RETURN (SELECT SUM(price) FROM items) //
CREATE PROCEDURE add_item(IN n VARCHAR(100)) BEGIN INSERT INTO items (name) VALUES (n); END //
DELIMITER ;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;
CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10;
CREATE VIEW money AS SELECT (SELECT SUM(bal) FROM bank.acct_a) + (SELECT SUM(bal) FROM bank.acct_b) AS total;
CALL add_item('from a procedure');
SQL

cat >"$T/cairn.yaml" <<YAML
repository: $REPO
services:
  shop:
    owner: team-shop
    objectives: { rpo: 1d, rto: 1h }
    schedule: "0 3 * * *"
    engine:
      type: mariadb
      socket: $S
      parallel: 3
YAML
C() { cairn --config "$T/cairn.yaml" "$@"; }
expect_exit 0 C policy validate
sed 's/parallel: 3/parallel: 0/' "$T/cairn.yaml" >"$T/zero.yaml"
expect_exit 2 cairn --config "$T/zero.yaml" policy validate
assert_contains "$ERR$OUT" "engine.parallel"
printf '      mode: physical\n' >>"$T/zero.yaml"
sed -i 's/parallel: 0/parallel: 2/' "$T/zero.yaml"
expect_exit 2 cairn --config "$T/zero.yaml" policy validate
assert_contains "$ERR$OUT" "mode logical only"

step "a 3-stream backup while a writer moves money in single transactions"
# Each transfer: -1 from acct_a, +1 to acct_b, one ledger row of 1: the
# three tables stay consistent only if all streams see the same commits.
cat >"$T/transfers.sql" <<'SQL'
SET autocommit = 0;
SQL
for i in $(seq 1 4000); do
  id=$((i % 25000 + 1))
  printf 'UPDATE bank.acct_a SET bal = bal - 1 WHERE id = %d; UPDATE bank.acct_b SET bal = bal + 1 WHERE id = %d; INSERT INTO bank.ledger (amount) VALUES (1); COMMIT;\n' "$id" "$id"
done >>"$T/transfers.sql"
( while [ ! -e "$T/stop" ]; do M "$S" <"$T/transfers.sql" || exit 1; done ) &
writer=$!
sleep 1
expect_exit 0 C --json backup --service shop
moving_id=$(jq -r .snapshot_id <<<"$OUT")
touch "$T/stop"
wait "$writer" || fail "writer"
R --json snapshots >"$T/snaps.json"
assert_eq parallel "$(json_get "$T/snaps.json" '.[0].engine.layout')" "layout"
assert_eq '["dump/tables-01.sql","dump/tables-02.sql","dump/tables-03.sql","dump/objects.sql"]' \
  "$(json_get "$T/snaps.json" '.[0].engine.streams' | jq -c .)" "streams"
[[ $(json_get "$T/snaps.json" '.[0].engine.binlog_file') == binlog.0000* ]] || fail "no binlog file recorded"
expect_exit 0 R ls "$moving_id"
for f in /dump/tables-01.sql /dump/tables-02.sql /dump/tables-03.sql /dump/objects.sql /users.sql; do
  assert_contains "$OUT" "$f"
done
# The three big tables are in three different streams.
for k in 01 02 03; do R dump "$moving_id:/dump/tables-$k.sql" >"$T/tables-$k.sql" || fail "dump $k"; done
for t in acct_a acct_b ledger; do
  assert_eq 1 "$(grep -l "CREATE TABLE \`$t\`" "$T"/tables-0?.sql | wc -l)" "streams holding $t"
done
R dump "$moving_id:/dump/objects.sql" >"$T/objects.sql"
assert_contains "$(cat "$T/objects.sql")" "VIEW \`money\`"
assert_eq 0 "$(grep -c '^INSERT INTO `' "$T/objects.sql" || true)" "rows in objects.sql"

step "the restored copy balances: every stream saw the same commits"
start_mariadb moving
expect_exit 0 R mariadb restore --service shop --snapshot "$moving_id" --base-only --socket "$SOCK_moving"
total=$(M "$SOCK_moving" -e "SELECT total FROM shop.money")
assert_eq 30000000 "$total" "money in the restored copy"
moved=$(M "$SOCK_moving" -e "SELECT SUM(bal) FROM bank.acct_b")
logged=$(M "$SOCK_moving" -e "SELECT COUNT(*) - 20000 FROM bank.ledger")
assert_eq "$moved" "$logged" "transfers in acct_b vs ledger rows"
[ "$moved" -gt 0 ] || fail "the writer committed nothing before the backup's point"

step "a quiet 3-stream backup restores to exactly the source"
expect_exit 0 C --json backup --service shop
quiet_id=$(jq -r .snapshot_id <<<"$OUT")
start_mariadb quiet
expect_exit 0 R mariadb restore --service shop --snapshot "$quiet_id" --base-only --socket "$SOCK_quiet"
assert_same_databases "$S" "$SOCK_quiet" bank shop
assert_shop_objects_work "$S" "$SOCK_quiet"
# --parallel on the command line wins over the policy; more streams than tables is fine.
expect_exit 0 C --json mariadb backup --service shop --parallel 12 --database shop
assert_eq 4 "$(jq '.engine.streams | length' <<<"$OUT")" "streams for 3 tables"

step "no binlog: parallel dumps refuse (exit 1), no snapshot"
start_mariadb nobin --skip-log-bin
M "$SOCK_nobin" -e "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)"
n=$(snapshot_count "$REPO")
expect_exit 1 R mariadb backup --service nobin --socket "$SOCK_nobin" --parallel 2
assert_contains "$ERR" "need the binlog"
assert_eq "$n" "$(snapshot_count "$REPO")" "snapshots after a refused parallel dump"

step "a user without RELOAD: a clear error, no snapshot"
M "$S" -e "CREATE USER 'weak'@'localhost' IDENTIFIED BY 'weak-secret';
           GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, REPLICATION CLIENT ON *.* TO 'weak'@'localhost'"
echo weak-secret >"$T/weak.pw"
expect_exit 1 R mariadb backup --service shop --socket "$S" --user weak --password-file "$T/weak.pw" --parallel 2
assert_contains "$ERR" "RELOAD"
assert_not_contains "$ERR" "weak-secret" "the password in a message"
assert_eq "$n" "$(snapshot_count "$REPO")" "snapshots without RELOAD"

step "one dump stream killed mid-way: exit 1, no snapshot, commits flow again"
M "$S" -e "CREATE TABLE bank.big (id INT PRIMARY KEY, pad CHAR(200)) SELECT seq AS id, REPEAT('p', 200) AS pad FROM bank.seq_1_to_400000"
( rc=0; C backup --service shop >"$T/killed.out" 2>&1 || rc=$?; echo $rc >"$T/killed.rc" ) &
bg=$!
for _ in $(seq 1 400); do pgrep -f "mariadb-dump.*--skip-routines" >/dev/null && break; sleep 0.02; done
pkill -9 -f -o "mariadb-dump.*--skip-routines" || fail "no dump stream to kill"
wait "$bg"
assert_eq 1 "$(cat "$T/killed.rc")" "exit code when a stream dies"
assert_contains "$(cat "$T/killed.out")" "killed by signal 9"
assert_contains "$(cat "$T/killed.out")" "no snapshot written"
assert_eq "$n" "$(snapshot_count "$REPO")" "snapshots after a killed stream"
timeout 20 mariadb --no-defaults -S "$S" -uroot -e "INSERT INTO bank.ledger (amount) VALUES (0)" ||
  fail "commits still blocked after the failed backup"
expect_exit 0 R check

step "cairn killed (-9) at random points of a parallel dump: commits never stay blocked"
RANDOM=7
for round in 1 2 3 4 5; do
  "$CAIRN_BIN" --no-progress --config "$T/cairn.yaml" backup --service shop >/dev/null 2>&1 &
  victim=$!
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  kill -9 "$victim" 2>/dev/null || true
  wait "$victim" 2>/dev/null || true
  timeout 20 mariadb --no-defaults -S "$S" -uroot -e "INSERT INTO bank.ledger (amount) VALUES (0)" ||
    fail "round $round: commits blocked after cairn was killed"
done
for _ in $(seq 1 100); do pgrep -f "mariadb-dump.*--skip-routines" >/dev/null || break; sleep 0.1; done
pgrep -f "mariadb-dump.*--skip-routines" >/dev/null && fail "dump processes outlived the killed cairn"
expect_exit 0 R check
