# SQLite engine: backups of a live WAL database while a writer commits
# batches of 10 rows (plus a counter row) in each transaction; every restored
# copy passes integrity_check and holds whole batches only, numbered without
# gaps, with the counter matching: a committed state. Also: restore refuses to
# overwrite, --force, the temporary copy never stays behind, and bad inputs
# (missing file, not a database, a damaged database caught at restore,
# policy typos).
# Usage: bash tests/e2e/test_sqlite.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
unset CAIRN_CONFIG

REPO=$T/repo
new_repo "$REPO"
DB=$T/app/app.db
mkdir -p "$T/app" "$T/tmp"
export TMPDIR=$T/tmp  # where cairn stages the copy

step "a 30 MB WAL database and a writer that keeps committing batches"
python3 - "$DB" <<'PY' || fail "populate"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, payload BLOB)")
db.execute("CREATE INDEX rows_batch ON rows(batch)")
db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, batches INTEGER)")
db.execute("INSERT INTO meta VALUES ('count', 0)")
with db:
    for b in range(1, 12001):
        db.executemany("INSERT INTO rows (batch, payload) VALUES (?, randomblob(220))", [(b,)] * 10)
    db.execute("UPDATE meta SET batches = 12000")
db.close()
PY
cat >"$T/writer.py" <<'PY'
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=5, isolation_level=None)
stop, progress = sys.argv[2], sys.argv[3]
b = db.execute("SELECT batches FROM meta").fetchone()[0]
while not os.path.exists(stop):
    b += 1
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO rows (batch, payload) VALUES (?, randomblob(220))", [(b,)] * 10)
    db.execute("UPDATE meta SET batches = ?", (b,))
    db.execute("COMMIT")
    if b % 50 == 0:
        with open(progress + ".tmp", "w") as f: f.write(str(b))
        os.replace(progress + ".tmp", progress)
print(b)
PY
python3 "$T/writer.py" "$DB" "$T/stop" "$T/progress" >"$T/writer.out" 2>&1 &
WRITER=$!
on_exit "touch '$T/stop'; wait $WRITER 2>/dev/null"
for _ in $(seq 1 100); do [ -s "$T/progress" ] && break; sleep 0.1; done
[ -s "$T/progress" ] || fail "the writer did not start: $(cat "$T/writer.out")"

cat >"$T/cairn.yaml" <<EOF
repository: $REPO
services:
  app:
    owner: team-app
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: sqlite, path: $DB}
  missing:
    owner: team-app
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: sqlite, path: $T/app/nope.db}
  junk:
    owner: team-app
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: sqlite, path: $T/app/junk.db}
  damaged:
    owner: team-app
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: sqlite, path: $T/app/damaged.db}
EOF
C() { cairn --config "$T/cairn.yaml" "$@"; }
expect_exit 0 C policy validate

# check_committed FILE MIN MAX: integrity ok; whole batches 1..N without gaps;
# meta.batches = N; MIN <= N <= MAX. Prints N.
check_committed() {
  python3 - "$@" <<'PY'
import sqlite3, sys
path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect("file:" + path + "?mode=ro", uri=True)
assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], "integrity_check"
n = db.execute("SELECT batches FROM meta").fetchone()[0]
bad = db.execute("SELECT batch, count(*) FROM rows GROUP BY batch HAVING count(*) != 10 LIMIT 5").fetchall()
assert not bad, "incomplete batches: %r" % bad
nb, mx, rows, maxid = db.execute("SELECT count(DISTINCT batch), max(batch), count(*), max(id) FROM rows").fetchone()
assert nb == mx == n, "batches: %d distinct, max %d, meta says %d" % (nb, mx, n)
assert rows == maxid == 10 * n, "rows %d, max id %d, batches %d" % (rows, maxid, n)
assert lo <= n <= hi, "batch %d outside the backup's window %d..%d" % (n, lo, hi)
print(n)
PY
}

step "three backups while the writer commits; each restore is a committed state"
for i in 1 2 3; do
  before=$(cat "$T/progress")
  expect_exit 0 C --json backup --service app
  after=$(cat "$T/progress")
  id=$(jq -r .snapshot_id <<<"$OUT")
  assert_eq "sqlite app.db wal" "$(jq -r '.engine | "\(.type) \(.file) \(.journal_mode)"' <<<"$OUT")" "engine metadata"
  assert_eq "" "$(ls -A "$T/tmp")" "staging folder after backup $i"
  expect_exit 0 C sqlite restore --service app --snapshot "$id" --target "$T/restored$i/app.db"
  assert_contains "$OUT" "integrity_check: ok"
  # The writer's progress file lags by up to 50 batches: widen the window.
  n=$(check_committed "$T/restored$i/app.db" "$before" $((after + 50))) || fail "restored copy $i is not a committed state"
  echo "backup $i: batch $n (writer at $before before, $after after)"
done
touch "$T/stop"
wait "$WRITER" || fail "the writer failed (locked out?): $(cat "$T/writer.out")"
final=$(tail -1 "$T/writer.out")
echo "writer committed $final batches in all"
expect_exit 0 cairn --repo "$REPO" --json snapshots
meta=$(jq -c '[.[] | select(.service == "app")][0].engine' <<<"$OUT")
for f in page_size page_count freelist_count bytes sqlite_version; do
  [ "$(jq -r ".$f // empty" <<<"$meta")" != "" ] || fail "engine metadata lacks $f: $meta"
done

step "restore: refuses to overwrite, --force replaces (and drops a stale -wal)"
expect_exit 1 C sqlite restore --service app --target "$T/restored1/app.db"
assert_contains "$ERR" "exists: give --force to replace it"
echo stale >"$T/restored1/app.db-wal"
expect_exit 0 C sqlite restore --service app --target "$T/restored1/app.db" --force
[ ! -e "$T/restored1/app.db-wal" ] || fail "stale -wal kept"
check_committed "$T/restored1/app.db" 0 "$final" >/dev/null || fail "forced restore"
expect_exit 1 C sqlite restore --service app --target "$T/fresh/app.db" --snapshot ffffffff
expect_exit 1 cairn --repo "$REPO" sqlite restore --service nosuch --target "$T/x.db"
assert_contains "$ERR" "service nosuch has no sqlite snapshot"

step "bad inputs: missing file, not a database: no snapshot, nothing staged"
n0=$(snapshot_count "$REPO")
expect_exit 1 C backup --service missing
assert_contains "$ERR" "service missing"
assert_contains "$ERR" "nope.db does not exist"
[ ! -e "$T/app/nope.db" ] || fail "the backup created the missing database"
head -c 100000 /dev/urandom >"$T/app/junk.db"
expect_exit 1 C backup --service junk
assert_contains "$ERR" "service junk"
assert_contains "$ERR" "file is not a database"
assert_eq "$n0" "$(snapshot_count "$REPO")" "snapshots after failed backups"
assert_eq "" "$(ls -A "$T/tmp")" "staging folder after failed backups"

step "a damaged database: the backup copies it, the restore refuses it"
python3 - "$T/app/damaged.db" <<'PY' || fail "damaged db"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
with db:
    db.executemany("INSERT INTO t (v) VALUES (?)", [("value %d %s" % (i, "x" * 100),) for i in range(5000)])
db.close()
with open(sys.argv[1], "r+b") as f:  # garbage over the middle of page 30 (a b-tree page)
    f.seek(29 * 4096 + 200); f.write(bytes(range(256)) * 2)
PY
expect_exit 0 C --json backup --service damaged
expect_exit 1 C sqlite restore --service damaged --target "$T/damaged-restored.db"
assert_contains "$ERR" "integrity_check"
[ ! -e "$T/damaged-restored.db" ] || fail "a database that failed integrity_check was put in place"
assert_eq "" "$(find "$T" -maxdepth 1 -name 'damaged-restored.db*')" "leftovers of a refused restore"

step "policy typos"
cat >"$T/typo.yaml" <<EOF
repository: $REPO
services:
  app:
    owner: team-app
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: sqlite, pathh: $DB}
  rel:
    owner: team-app
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: sqlite, path: app.db}
EOF
expect_exit 2 cairn --config "$T/typo.yaml" policy validate
assert_contains "$ERR" 'engine.pathh: unknown key "pathh" (did you mean "path"?)'
assert_contains "$ERR" 'engine.path: missing: the database file'
assert_contains "$ERR" 'engine.path: "app.db" is not absolute'
n1=$(snapshot_count "$REPO")
expect_exit 2 cairn --config "$T/typo.yaml" backup --service app
assert_eq "$n1" "$(snapshot_count "$REPO")" "snapshots after a policy typo"

step "docs/cairn.schema.json agrees: the policies above pass, the typos fail"
SRC=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
PY=
for p in /usr/bin/python3 python3; do
  "$p" -c 'import yaml, jsonschema' 2>/dev/null && { PY=$p; break; }
done
if [[ -z $PY ]]; then
  skip "python3 with jsonschema and yaml is missing (scripts/setup installs them)"
else
  schema_check() {  # schema_check FILE: exit 1 with the errors when FILE does not match
    "$PY" - "$SRC/docs/cairn.schema.json" "$1" <<'PY'
import json, sys, yaml
from jsonschema import Draft202012Validator
v = Draft202012Validator(json.load(open(sys.argv[1])))
errors = list(v.iter_errors(yaml.safe_load(open(sys.argv[2]))))
for e in errors: print("/".join(map(str, e.absolute_path)) + ": " + e.message)
sys.exit(1 if errors else 0)
PY
  }
  expect_exit 0 schema_check "$T/cairn.yaml"
  expect_exit 1 schema_check "$T/typo.yaml"
fi
