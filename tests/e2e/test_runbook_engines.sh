# Runbooks of the newer engines: the printed blocks of a SQLite and a Redis
# service run exactly as printed (only the variables the runbook names are
# set) against real data — the restored database holds the source's rows, a
# restored dump.rdb loads into a real redis-server with the same keys and
# values, an older restore point, the put-back, the drill and the fleet
# blocks work too. MariaDB (logical + binlog archiving, physical) and volume
# runbooks carry their engine's commands, and every block of every runbook
# is valid sh.
# Usage: bash tests/e2e/test_runbook_engines.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

for tool in sqlite3 redis-server redis-cli redis-check-rdb; do
  command -v "$tool" >/dev/null || { skip "$tool is not installed (scripts/setup installs it)"; exit 0; }
done
unset CAIRN_CONFIG

# The runbook prints `cairn ...`: put this binary first in PATH under that name.
mkdir -p "$T/bin"
ln -s "$CAIRN_BIN" "$T/bin/cairn"
export PATH="$T/bin:$PATH"

# As root the Redis servers run as the redis user (the printed start block
# does the same), so it must reach the folders below $T.
chmod 755 "$T"
if [ "$(id -u)" -eq 0 ] && id redis >/dev/null 2>&1; then
  AS_REDIS=(runuser -u redis --)
else
  AS_REDIS=()
fi

REPO=$T/repo
new_repo "$REPO"
printf '%s\n' "$CAIRN_PASSWORD" >"$T/repo.pass"
mkdir -p "$T/src" "$T/state"

step "a SQLite database and a Redis server with data"
DB=$T/src/notes.db
sqlite3 "$DB" >/dev/null <<'SQL'
PRAGMA journal_mode=WAL;
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, blob BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
INSERT INTO items SELECT i, 'item ' || i || ' ''quoted''', i * 1.25, randomblob(64) FROM n;
CREATE TABLE "odd name" (k TEXT);
INSERT INTO "odd name" VALUES ('a'), ('b');
SQL
rows() { sqlite3 "$1" "SELECT id, name, price, hex(blob) FROM items ORDER BY id; SELECT k FROM \"odd name\" ORDER BY k"; }
rows "$DB" >"$T/rows-v1"

mkdir -p "$T/redis-src"
[ ${#AS_REDIS[@]} -gt 0 ] && chown redis: "$T/redis-src"
RPORT=$(free_port)
"${AS_REDIS[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$T/redis-src" --save '' \
  --appendonly no --daemonize no --repl-diskless-sync-delay 0 >"$T/redis-src.log" 2>&1 &
RPID=$!
on_exit "kill $RPID 2>/dev/null; wait $RPID 2>/dev/null"
wait_port "$RPORT" "$RPID" "$T/redis-src.log"
for _ in $(seq 1 300); do [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
SERVER_PID=$(redis-cli -p "$RPORT" info server | tr -d '\r' | sed -n 's/^process_id://p')
on_exit "kill $SERVER_PID 2>/dev/null"
r() { redis-cli -p "$RPORT" "$@" >/dev/null || fail "redis-cli $*"; }
for i in $(seq 1 40); do r set "k$i" "value $i"; done
r hset h f1 v1 f2 "v 2"
r rpush l a b c
r sadd s x y z
r zadd z 1 one 2 two
r -n 1 set other-db yes
r set k1 v1

# Source of truth for Redis: every key's serialized value (DUMP), per
# database; a set's members sorted (its serialization follows hash order).
redis_state() {  # redis_state PORT > file
  local db k
  for db in 0 1; do
    redis-cli -p "$1" -n "$db" --scan | sort | while read -r k; do
      if [ "$(redis-cli -p "$1" -n "$db" type "$k")" = set ]; then
        printf '%s %s set %s\n' "$db" "$k" "$(redis-cli -p "$1" -n "$db" smembers "$k" | sort | tr '\n' ' ')"
      else
        printf '%s %s %s\n' "$db" "$k" "$(redis-cli -p "$1" -n "$db" --no-raw dump "$k")"
      fi
    done
  done
}
redis_state "$RPORT" >"$T/redis-v1"
assert_eq 45 "$(wc -l <"$T/redis-v1")" "source keys"

CFG=$T/cairn.yaml
cat >"$CFG" <<YAML
repository:
  location: $REPO
  password_file: $T/repo.pass
services:
  notes:
    owner: team-notes
    tier: high
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: sqlite, path: $DB }
    schedule: "0 * * * *"
    drill:
      schedule: "0 4 * * 0"
      checks: ["SELECT count(*) = 500 FROM items", 'exec: test -s "\$CAIRN_DRILL_DB"']
  cache:
    owner: team-web
    tier: high
    objectives: { rpo: 1h, rto: 30m }
    engine: { type: redis, host: 127.0.0.1, port: $RPORT }
    schedule: "0 * * * *"
    drill:
      schedule: "0 4 * * 0"
      checks: ['exec: [ "\$(redis-cli -p \$REDIS_PORT get k1)" = v1 ]']
  orders-db:
    owner: team-orders
    tier: critical
    objectives: { rpo: 5m, rto: 1h }
    engine: { type: mariadb, mode: logical, socket: /run/mysqld/mysqld.sock, user: backup,
              password_file: /etc/cairn/orders.pw, binlog_archiving: true }
    schedule: "0 2 * * *"
    drill: { schedule: "0 4 * * 0", checks: ["SELECT count(*) > 0 FROM shop.orders"] }
  orders-phys:
    owner: team-orders
    objectives: { rpo: 1d, rto: 4h }
    engine: { type: mariadb, mode: physical, socket: /run/mysqld/mysqld.sock }
    schedule: "0 2 * * *"
  uploads:
    owner: team-media
    objectives: { rpo: 1d, rto: 4h }
    engine: { type: volume, driver: btrfs, source: /srv/uploads }
    schedule: "0 2 * * *"
    drill: { checks: ['exec: test -d ./srv/uploads'] }
daemon:
  state: $T/state/state.db
YAML
C() { cairn --config "$CFG" "$@"; }
# The commands of one kind from a Markdown runbook, exactly as printed.
extract() {  # extract FILE KIND > script
  python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r'^```sh ' + re.escape(sys.argv[2]) + r'\n(.*?)^```$', text, re.S | re.M)
if len(blocks) != 1:
    sys.exit(f"expected one ```sh {sys.argv[2]} block, found {len(blocks)}")
sys.stdout.write(blocks[0])
PY
}
# Runs a block in a fresh shell with only the named variables set.
run_block() {  # run_block FILE KIND [VAR=value...]
  local file=$1 kind=$2
  shift 2
  extract "$file" "$kind" >"$T/$kind.sh" || fail "no $kind block in $file"
  env -i "$@" PATH="$PATH" HOME="$T" sh -e "$T/$kind.sh" >"$T/$kind.out" 2>&1 || fail "$kind block of $file failed:
$(cat "$T/$kind.sh")
--- output:
$(cat "$T/$kind.out")"
}
kinds() { grep -o '^```sh [a-z-]*' "$1" | cut -c7- | tr '\n' ' ' | sed 's/ $//'; }

expect_exit 0 C policy validate
expect_exit 0 C backup --service notes
expect_exit 0 C backup --service cache
OLD_NOTES=$(cairn --repo "$REPO" --json snapshots --service notes | jq -r '.[0].id')

step "SQLite: restore-latest and verify, as printed"
expect_exit 0 C runbook --service notes --out "$T/notes.md"
MD=$(cat "$T/notes.md")
assert_eq "restore-latest restore-snapshot verify drill fleet-restore put-back" "$(kinds "$T/notes.md")" "notes blocks"
assert_contains "$MD" "cairn --config $CFG sqlite restore --service notes --target \"\$db\""
assert_not_contains "$MD" "WARNING"
run_block "$T/notes.md" restore-latest CAIRN_RESTORE_TARGET="$T/r-notes"
assert_contains "$(cat "$T/restore-latest.out")" "integrity_check: ok"
rows "$T/r-notes/notes.db" >"$T/rows-restored"
assert_file_same "$T/rows-v1" "$T/rows-restored"
run_block "$T/notes.md" verify CAIRN_RESTORE_TARGET="$T/r-notes"
V=$(cat "$T/verify.out")
assert_contains "$V" "integrity_check: ok"
assert_contains "$V" "items: 500 rows"
assert_contains "$V" "odd name: 2 rows"
assert_contains "$V" "check passed: SELECT count(*) = 500 FROM items"
assert_contains "$V" 'check passed: test -s "$CAIRN_DRILL_DB"'
assert_not_contains "$V" "FAILED"

step "SQLite: a damaged restored copy fails verify loudly"
cp "$T/r-notes/notes.db" "$T/broken.db"
mkdir -p "$T/r-broken" && cp "$T/broken.db" "$T/r-broken/notes.db"
python3 - "$T/r-broken/notes.db" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
page = int.from_bytes(b[16:18], "big") or 65536
for off in range(page * 2, page * 3):  # scribble over the items table's second page
    b[off] = 0x5a
open(p, "wb").write(b)
PY
extract "$T/notes.md" verify >"$T/v.sh"
env -i CAIRN_RESTORE_TARGET="$T/r-broken" PATH="$PATH" sh "$T/v.sh" >"$T/v.out" 2>&1 || true
assert_contains "$(cat "$T/v.out")" "INTEGRITY CHECK FAILED"

step "SQLite: an older restore point, then put back onto the live file"
sqlite3 "$DB" "INSERT INTO items VALUES (501, 'new', 0, NULL); DELETE FROM items WHERE id = 7"
rows "$DB" >"$T/rows-v2"
expect_exit 0 C backup --service notes
run_block "$T/notes.md" restore-snapshot CAIRN_RESTORE_TARGET="$T/r-notes" CAIRN_RESTORE_SNAPSHOT="${OLD_NOTES:0:8}"
rows "$T/r-notes/notes.db" >"$T/rows-old"
assert_file_same "$T/rows-v1" "$T/rows-old"
run_block "$T/notes.md" put-back CAIRN_RESTORE_SNAPSHOT="${OLD_NOTES:0:8}"
rows "$DB" >"$T/rows-live"
assert_file_same "$T/rows-v1" "$T/rows-live"
for suffix in -wal -shm; do [[ ! -e $DB$suffix ]] || fail "put-back left $DB$suffix"; done

step "SQLite: prove it and the fleet block, as printed"
run_block "$T/notes.md" drill
assert_contains "$(cat "$T/drill.out")" "PASSED"
run_block "$T/notes.md" fleet-restore CAIRN_RESTORE_ROOT="$T/fleet"
rows "$T/fleet/notes/notes.db" >"$T/rows-fleet"
assert_file_same "$T/rows-v2" "$T/rows-fleet"

step "Redis: restore-latest, start-server, verify, as printed"
expect_exit 0 C runbook --service cache --out "$T/cache.md"
MD=$(cat "$T/cache.md")
assert_eq "restore-latest restore-snapshot start-server verify stop-server drill fleet-restore put-back" \
  "$(kinds "$T/cache.md")" "cache blocks"
assert_contains "$MD" "redis restore --service cache --target-dir \"\$target\""
RP2=$(free_port)
run_block "$T/cache.md" restore-latest CAIRN_RESTORE_TARGET="$T/r-cache"
assert_contains "$(cat "$T/restore-latest.out")" "checked with redis-check-rdb"
run_block "$T/cache.md" start-server CAIRN_RESTORE_TARGET="$T/r-cache" CAIRN_RESTORE_PORT="$RP2"
RPID2=$(cat "$T/r-cache/redis-server.pid")
on_exit "kill $RPID2 2>/dev/null"
if [ ${#AS_REDIS[@]} -gt 0 ]; then
  assert_eq redis "$(ps -o user= -p "$RPID2" | tr -d ' ')" "scratch redis-server user"
fi
redis_state "$RP2" >"$T/redis-restored"
assert_file_same "$T/redis-v1" "$T/redis-restored"
run_block "$T/cache.md" verify CAIRN_RESTORE_TARGET="$T/r-cache" CAIRN_RESTORE_PORT="$RP2"
V=$(cat "$T/verify.out")
assert_contains "$V" "RDB looks OK"
assert_contains "$V" "db 0 holds 44 keys (the newest snapshot recorded 45 in all databases)"
assert_contains "$V" "db1:keys=1"
assert_contains "$V" 'check passed: [ "$(redis-cli -p $REDIS_PORT get k1)" = v1 ]'
assert_not_contains "$V" "FAILED"
run_block "$T/cache.md" stop-server CAIRN_RESTORE_PORT="$RP2"
for _ in $(seq 1 100); do kill -0 "$RPID2" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RPID2" 2>/dev/null && fail "stop-server left redis-server $RPID2 running"
assert_eq 0 "$(cmp -s "$T/r-cache/dump.rdb" <(cairn --config "$CFG" dump latest:/dump.rdb --service cache); echo $?)" \
  "the scratch server did not rewrite dump.rdb"

step "Redis: prove it (the drill's check reads k1 of the newest backup)"
run_block "$T/cache.md" drill
assert_contains "$(cat "$T/drill.out")" "PASSED"

step "Redis: an older restore point, put-back and fleet blocks"
OLD_CACHE=$(cairn --repo "$REPO" --json snapshots --service cache | jq -r '.[0].id')
r set k1 changed
expect_exit 0 C backup --service cache
run_block "$T/cache.md" restore-snapshot CAIRN_RESTORE_TARGET="$T/r-cache" CAIRN_RESTORE_SNAPSHOT="${OLD_CACHE:0:8}"
mkdir -p "$T/live-redis"
run_block "$T/cache.md" put-back CAIRN_REDIS_DIR="$T/live-redis" CAIRN_RESTORE_SNAPSHOT="${OLD_CACHE:0:8}"
cmp -s "$T/live-redis/dump.rdb" "$T/r-cache/dump.rdb" || fail "put-back wrote another RDB than the restore point"
run_block "$T/cache.md" fleet-restore CAIRN_RESTORE_ROOT="$T/fleet"
redis-check-rdb "$T/fleet/cache/dump.rdb" >/dev/null || fail "fleet restore: dump.rdb does not check"

step "MariaDB runbooks: base, binlog PITR by time and position, CHECK TABLE"
expect_exit 3 C runbook --service orders-db --out "$T/orders.md"   # no snapshot, no drill: warnings
MD=$(cat "$T/orders.md")
assert_eq "start-server restore-latest restore-pitr restore-position restore-snapshot verify stop-server drill fleet-restore" \
  "$(kinds "$T/orders.md")" "orders-db blocks"
assert_contains "$(extract "$T/orders.md" restore-pitr)" \
  "cairn --config $CFG mariadb restore --service orders-db --socket \"\$socket\" --to-time \"\${CAIRN_RESTORE_TIME:?"
assert_contains "$(extract "$T/orders.md" restore-position)" "--to-position \"\${CAIRN_RESTORE_POSITION:?"
assert_contains "$(extract "$T/orders.md" verify)" "mariadb-check --socket=\"\$socket\" --all-databases"
assert_contains "$(extract "$T/orders.md" verify)" "SELECT count(*) > 0 FROM shop.orders"
assert_contains "$MD" "mariadb binlog-sync --service orders-db --flush"
expect_exit 3 C runbook --service orders-phys --out "$T/phys.md"
assert_eq "restore-latest restore-snapshot start-server verify stop-server drill fleet-restore" \
  "$(kinds "$T/phys.md")" "orders-phys blocks"
assert_contains "$(extract "$T/phys.md" restore-latest)" "--target-dir \"\$target/data\" --base-only"

step "volume runbook: files, comparison with the live volume, btrfs put-back"
expect_exit 3 C runbook --service uploads --out "$T/uploads.md"
assert_eq "restore-latest restore-snapshot verify drill fleet-restore put-back" "$(kinds "$T/uploads.md")" "uploads blocks"
assert_contains "$(extract "$T/uploads.md" verify)" "diff -rq --no-dereference /srv/uploads \"\$target/srv/uploads\""
assert_contains "$(extract "$T/uploads.md" verify)" "check passed: test -d ./srv/uploads"
assert_contains "$(extract "$T/uploads.md" put-back)" "btrfs subvolume create /srv/uploads.new"

step "every block of every runbook is valid sh; JSON lists the same blocks"
for f in "$T"/notes.md "$T"/cache.md "$T"/orders.md "$T"/phys.md "$T"/uploads.md; do
  for k in $(kinds "$f"); do
    extract "$f" "$k" >"$T/syntax.sh"
    sh -n "$T/syntax.sh" || fail "$f: block $k is not valid sh"
  done
done
expect_exit 0 C --json runbook --service cache
jq -e '(.commands | map(.kind)) == ["restore-latest","restore-snapshot","start-server","verify",
  "stop-server","put-back","drill","fleet-restore"]' <<<"$OUT" >/dev/null || fail "json: $OUT"
