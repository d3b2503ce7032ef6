# Fleet recovery point: a PostgreSQL service with WAL archiving, a SQLite
# service and a files service, all changed after an instant T, restored to
# T with `cairn fleet restore`: PostgreSQL to exactly T (its copy, once
# started, holds exactly the rows committed by T), the others to their newest
# snapshot before T with the exact gap reported; `drill run --fleet` proves
# the same point with checks; a service without a snapshot before T fails
# the run and is named.
# Usage: bash tests/e2e/test_fleet.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=lib_pg.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib_pg.sh"
unset CAIRN_CONFIG

step "three services: PostgreSQL (WAL archived), SQLite, files"
start_archiving_pg shop
mkdir -p "$T/app" "$T/docs" "$T/scratch"
sqlite_rows() {  # sqlite_rows N: the app database holds rows 1..N
  python3 - "$T/app/app.db" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY)")
db.execute("DELETE FROM items")
db.executemany("INSERT INTO items VALUES (?)", [(i,) for i in range(1, int(sys.argv[2]) + 1)])
db.commit()
PY
}
cat >"$T/cairn.yaml" <<YAML
repository: { location: $REPO, key_file: $KEY }
services:
  shop:
    owner: team-shop
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: postgres, mode: physical, wal_archiving: true, dsn: "host=$T/pg port=$PORT user=postgres dbname=shop" }
    schedule: "0 */6 * * *"
    drill: { checks: ["SELECT count(*) = 100 FROM orders"] }
  app:
    owner: team-app
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: sqlite, path: $T/app/app.db }
    schedule: "@daily"
    drill: { checks: ["SELECT count(*) = 10 FROM items"] }
  docs:
    owner: team-docs
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: files, paths: [$T/docs] }
    schedule: "@daily"
    drill: { checks: ["exec: grep -qx v1 .$T/docs/version"] }
  late:
    owner: team-late
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: files, paths: [$T/docs] }
    schedule: "@daily"
daemon: { state: $T/state.db }
YAML
F() { cairn --config "$T/cairn.yaml" "$@"; }
expect_exit 0 F policy validate

insert 1 100
expect_exit 0 F backup --service shop
sqlite_rows 10
expect_exit 0 F --json backup --service app
app_before=$(jq -r .snapshot_id <<<"$OUT")
echo v1 >"$T/docs/version"
expect_exit 0 F --json backup --service docs
docs_before=$(jq -r .snapshot_id <<<"$OUT")
wait_archived
sleep 1.1
T_POINT=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 1.1
insert 101 200
sqlite_rows 20
expect_exit 0 F backup --service app
echo v2 >"$T/docs/version"
expect_exit 0 F backup --service docs
expect_exit 0 F backup --service late
wait_archived
snap_time() { cairn --repo "$REPO" --key-file "$KEY" --json snapshots | jq -r --arg id "$1" '.[] | select(.id == $id) | .time'; }
gap_of() {  # gap_of SNAPSHOT_ID: T - its time, in seconds (6 decimals)
  python3 - "$T_POINT" "$(snap_time "$1")" <<'PY'
import sys
from datetime import datetime
def parse(s):
    s = s.replace("Z", "+00:00")
    head, _, rest = s.partition(".")
    frac, sign, tz = "", "", ""
    for i, c in enumerate(rest):
        if c in "+-":
            frac, tz = rest[:i], rest[i:]
            break
    dt = datetime.fromisoformat(head + tz)
    return dt.timestamp() + float("0." + (frac or "0"))
print(f"{parse(sys.argv[1]) - parse(sys.argv[2]):.6f}")
PY
}

step "fleet restore to T: PITR for shop, the snapshots before T for app and docs, exact gaps"
expect_exit 0 F --json fleet restore --services shop,app,docs --to-time "$T_POINT" --target-root "$T/restored"
jq -e '.services | length == 3' <<<"$OUT" >/dev/null || fail "fleet restore: $OUT"
assert_eq "pitr 0" "$(jq -r '.services[] | select(.service == "shop") | "\(.method) \(.gap_seconds)"' <<<"$OUT")" "shop"
assert_close() {  # assert_close EXPECTED ACTUAL WHAT: equal within 10 µs
  python3 -c "import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 1e-5)" "$1" "$2" ||
    fail "$3: expected $1, got $2"
}
for pair in "app $app_before" "docs $docs_before"; do
  set -- $pair
  assert_eq "snapshot $2" "$(jq -r --arg s "$1" '.services[] | select(.service == $s) | "\(.method) \(.snapshot_id)"' <<<"$OUT")" \
    "$1 restored from its snapshot before T"
  assert_close "$(gap_of "$2")" "$(jq -r --arg s "$1" '.services[] | select(.service == $s) | .gap_seconds' <<<"$OUT")" \
    "$1's gap to T"
done
assert_eq v1 "$(cat "$T/restored/docs$T/docs/version")" "docs content at T"
python3 -c "import sqlite3,sys; assert sqlite3.connect(sys.argv[1]).execute('select count(*) from items').fetchone()[0] == 10" \
  "$T/restored/app/app.db" || fail "app database at T"
grep -q "archive_mode = 'off'" "$T/restored/shop/data/postgresql.auto.conf" || fail "the PostgreSQL copy would archive"

step "the restored PostgreSQL copy, started, holds exactly the rows committed by T"
PORT2=$(free_port)
as_pg "$PGBIN/pg_ctl" -D "$T/restored/shop/data" -l "$T/pg/shop-copy.log" -w -t 120 \
  -o "-p $PORT2 -k $T/pg -c listen_addresses=" start >/dev/null || { tail "$T/pg/shop-copy.log"; fail "start the copy"; }
on_exit "as_pg '$PGBIN/pg_ctl' -D '$T/restored/shop/data' -m immediate -w stop >/dev/null 2>&1"
for _ in $(seq 1 300); do
  [ "$(psql_at "$PORT2" shop -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
  sleep 0.1
done
assert_eq "100 100" "$(psql_at "$PORT2" shop -c "SELECT count(*) || ' ' || max(id) FROM orders")" "rows at T"
as_pg "$PGBIN/pg_ctl" -D "$T/restored/shop/data" -m fast -w stop >/dev/null

step "bad input: a service without a snapshot before T fails the run and is named; a non-empty target is refused"
expect_exit 1 F fleet restore --services docs,late --to-time "$T_POINT" --target-root "$T/restored2"
assert_contains "$ERR" "late: service late has no snapshot at or before"
expect_exit 1 F fleet restore --services docs --to-time "$T_POINT" --target-root "$T/restored"
assert_contains "$ERR" "is not empty"
expect_exit 2 F fleet restore --services shop,nosuch --to-time "$T_POINT" --target-root "$T/restored3"
expect_exit 2 F fleet restore --services shop --to-time yesterday --target-root "$T/restored3"

step "drill run --fleet to T: every service recovered to T and checked, gaps reported"
expect_exit 0 F --json drill run --fleet --services shop,app,docs --point "$T_POINT" --scratch "$T/scratch"
jq -e '.passed and (.services | length) == 3 and ([.services[] | .passed] | all)' <<<"$OUT" >/dev/null ||
  fail "fleet drill: $OUT"
assert_close "$(gap_of "$app_before")" "$(jq -r '.services[] | select(.service == "app") | .rpo_seconds' <<<"$OUT")" \
  "app's gap in the fleet drill"
[[ -z $(ls -A "$T/scratch") ]] || fail "scratch folders left"
expect_exit 2 F drill run --fleet --service shop
echo PASS
