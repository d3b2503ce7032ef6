# PostgreSQL engine against a real PostgreSQL 15 started here: logical round
# trip of many types, physical base backup + WAL archiving (through a
# repository outage), point-in-time restores by time, LSN, xid and restore
# point that contain exactly the rows committed up to the target, a target on
# a new timeline, a killed base backup, a wrong DSN, and a damaged archived
# segment that stops recovery loudly.
# Usage: bash tests/e2e/test_pg.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

# shellcheck source-path=SCRIPTDIR source=lib_pg.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib_pg.sh"
# Every cairn call runs as the server's user, so the repository stays
# writable for archive_command.
R() { as_pg env CAIRN_PASSWORD="$CAIRN_PASSWORD" "$C" --no-progress --repo "$REPO" "$@"; }

start_server() {  # start_server DATADIR
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start >/dev/null
}
stop_server() { as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w stop >/dev/null 2>&1 || true; }

step "repository, key file, cluster with WAL archiving into cairn"
as_pg "$C" --no-progress init --repo "$REPO" --kdf-iterations 1 --kdf-memory 8 >/dev/null || fail "init"
R key add --new-key-file "$KEY" >/dev/null || fail "key add --new-key-file"
PORT=$(free_port)
DATA=$T/pg/data
as_pg "$PGBIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --locale=C >/dev/null || fail "initdb"
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$T/pg'
wal_level = replica
archive_mode = on
archive_command = '$C --key-file $KEY --repo $REPO wal-push --service shop --async --spool-dir $T/pg/spool %p'
track_commit_timestamp = on
EOF
start_server "$DATA" || { cat "$DATA.log"; fail "server did not start"; }
on_exit "stop_server '$DATA'"
DSN="host=$T/pg port=$PORT user=postgres dbname=shop"
psql_at "$PORT" postgres -c "CREATE DATABASE shop" || fail "createdb"
psql_at "$PORT" shop >/dev/null <<'SQL' || fail "schema"
CREATE EXTENSION pgcrypto;
CREATE EXTENSION hstore;
CREATE SEQUENCE order_no START 1000;
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(12,2), tags text[],
  doc jsonb, raw bytea, attrs hstore, made timestamptz, span interval, ip inet, uid uuid, lo oid);
INSERT INTO items (name, price, tags, doc, raw, attrs, made, span, ip, uid, lo)
SELECT 'item ' || i || E' \u00e9\u4e2d', i * 1.25, ARRAY['a' || i, 'b'], jsonb_build_object('i', i, 'x', repeat('y', i % 50)),
       gen_random_bytes(64), hstore('k', i::text), now() - i * interval '1 minute', i * interval '1 second',
       ('10.0.' || (i % 250) || '.1')::inet, gen_random_uuid(),
       CASE WHEN i % 500 = 0 THEN lo_from_bytea(0, decode(repeat(md5(i::text), 3000), 'hex')) END
FROM generate_series(1, 5000) i;
SELECT nextval('order_no') FROM generate_series(1, 7);
CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10;
CREATE FUNCTION total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(price) FROM items';
SQL

step "logical backup and restore into a new database: identical dump"
expect_exit 0 R --json pg backup --mode logical --service shop --dsn "$DSN"
logical_id=$(jq -r .snapshot_id <<<"$OUT")
assert_eq logical "$(jq -r .engine.mode <<<"$OUT")" "engine mode"
expect_exit 0 R ls "$logical_id"
assert_contains "$OUT" "/shop.dump"
assert_contains "$OUT" "/globals.sql"
psql_at "$PORT" postgres -c "CREATE DATABASE shop_copy" || fail "createdb shop_copy"
expect_exit 0 R pg restore --service shop --dsn "host=$T/pg port=$PORT user=postgres dbname=shop_copy"
dump_of() { as_pg "$PGBIN/pg_dump" -h "$T/pg" -p "$PORT" -U postgres --no-owner -d "$1" | grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict'; }  # per-dump random keys
dump_of shop >"$T/a.sql" && dump_of shop_copy >"$T/b.sql" || fail "pg_dump for comparison"
cmp -s "$T/a.sql" "$T/b.sql" || { diff "$T/a.sql" "$T/b.sql" | head -20; fail "restored database differs"; }
assert_eq "$(psql_at "$PORT" shop -c 'SELECT count(*) FROM pg_largeobject_metadata')" \
  "$(psql_at "$PORT" shop_copy -c 'SELECT count(*) FROM pg_largeobject_metadata')" "large objects"
# Parallel restore (-j) and a table selection.
psql_at "$PORT" postgres -c "CREATE DATABASE shop_j" || fail "createdb shop_j"
expect_exit 0 R pg restore --service shop --jobs 2 --dsn "host=$T/pg port=$PORT user=postgres dbname=shop_j"
assert_eq 5000 "$(psql_at "$PORT" shop_j -c 'SELECT count(*) FROM items')" "rows after pg_restore -j 2"

step "bad input: wrong DSN, missing database, no snapshot written"
n0=$(R --json snapshots | jq length)
expect_exit 1 R pg backup --mode logical --service shop --dsn "host=$T/pg port=1 user=postgres dbname=shop"
assert_contains "$ERR" "cannot connect to PostgreSQL"
expect_exit 1 R pg backup --mode logical --service shop --dsn "$DSN" --database nosuchdb
assert_contains "$ERR" "nosuchdb"
expect_exit 2 R pg backup --mode logical --service shop --dsn "host=$T/pg port=$PORT user=postgres password=s3cret dbname='unterminated"
assert_not_contains "$ERR" "s3cret" "password in an error message"
expect_exit 2 R pg restore --service shop --target-dir "$T/x" --to-time 2026-01-01T00:00:00Z --to-lsn 0/1
assert_eq "$n0" "$(R --json snapshots | jq length)" "snapshots after failed backups"

step "cairn backup --service from a policy file: the postgres engine, \${VAR} in the DSN"
cat >"$T/cairn-pg.yaml" <<YAML
repository: $REPO
services:
  shop:
    owner: team-shop
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: postgres, mode: logical, dsn: "host=$T/pg port=$PORT user=postgres dbname=shop password=\${PG_PASSWORD}" }
    schedule: "@daily"
  broken:
    owner: team-shop
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: postgres, mode: logical, dsn: "host=$T/pg port=$PORT user=postgres dbname=\${NO_SUCH_VAR}" }
    schedule: "@daily"
YAML
chmod 644 "$T/cairn-pg.yaml"
P() { as_pg env CAIRN_PASSWORD="$CAIRN_PASSWORD" PG_PASSWORD=unused-with-trust "$C" --no-progress --config "$T/cairn-pg.yaml" "$@"; }
expect_exit 0 P --json backup --service shop
assert_eq "logical shop" "$(jq -r '"\(.engine.mode) \(.service)"' <<<"$OUT")" "engine and service of a policy backup"
expect_exit 0 R ls "$(jq -r .snapshot_id <<<"$OUT")"
assert_contains "$OUT" "/shop.dump"
n1=$(R --json snapshots | jq length)
expect_exit 2 P backup --service broken
assert_contains "$ERR" "environment variable NO_SUCH_VAR is not set"
assert_eq "$n1" "$(R --json snapshots | jq length)" "snapshots after a policy backup with an unset variable"

step "physical base backup through pg_basebackup's stream, with WAL metadata; restore it"
expect_exit 0 R --json pg backup --mode physical --service shop --dsn "$DSN" --source stream
base1=$(jq -r .snapshot_id <<<"$OUT")
for f in start_lsn stop_lsn timeline system_identifier stop_time; do
  [ "$(jq -r ".engine.$f // empty" <<<"$OUT")" != "" ] || fail "engine metadata lacks $f: $OUT"
done
assert_eq stream "$(jq -r .engine.source <<<"$OUT")" "source of a --source stream backup"
expect_exit 0 R --json pg restore --service shop --snapshot "$base1" --to-immediate --target-dir "$T/pg/stream" --key-file "$KEY"
assert_eq true "$(jq -r .verified <<<"$OUT")" "stream base backup checked with pg_verifybackup"
printf "port = %s\narchive_mode = off\n" "$(free_port)" >>"$T/pg/stream/postgresql.auto.conf"
start_server "$T/pg/stream" || { tail -20 "$T/pg/stream.log" >&2; fail "server restored from the stream backup did not start"; }
stop_server "$T/pg/stream"

step "the same, read from the data directory on this host (the default here)"
# A stray file whose name is not UTF-8: the manifest hex-encodes it, and
# pg_verifybackup (run on every restore below) must accept the manifest.
as_pg sh -c "echo note > '$DATA/$(printf 'notes-\351.txt')'" || fail "stray file"
psql_at "$PORT" shop -c "CREATE UNLOGGED TABLE scratch_u AS SELECT generate_series(1, 5000) i" || fail "unlogged table"
unlogged=$(psql_at "$PORT" shop -c "SELECT pg_relation_filepath('scratch_u')")
expect_exit 0 R --json pg backup --mode physical --service shop --dsn "$DSN"
assert_eq "datadir $DATA" "$(jq -r '"\(.engine.source) \(.engine.data_directory)"' <<<"$OUT")" "source of a local base backup"
for f in start_lsn stop_lsn timeline start_wal_file; do
  [ "$(jq -r ".engine.$f // empty" <<<"$OUT")" != "" ] || fail "engine metadata lacks $f: $OUT"
done
local_base=$(jq -r .snapshot_id <<<"$OUT")
expect_exit 0 R ls "$local_base"
assert_contains "$OUT" "/backup_label"
assert_contains "$OUT" "/backup_manifest"
assert_contains "$OUT" "/pg_wal/archive_status"
assert_not_contains "$OUT" "postmaster.pid" "files of the running server in a base backup"
assert_contains "$OUT" "/${unlogged}_init"
grep -qx "/$unlogged" <<<"$OUT" && fail "the main fork of an unlogged table was copied"
[ "$(grep -c '^/pg_wal/[0-9A-F]\{24\}$' <<<"$OUT")" -ge 1 ] || fail "no WAL segment in the base backup: $OUT"
assert_eq 0 "$(psql_at "$PORT" shop -c "SELECT count(*) FROM pg_replication_slots")" "replication slots left after a backup"
# Tables created and dropped while the files are read: files that vanish
# between listing and reading are no warning (exit 0, not 3); WAL replay
# recreates or drops them on restore.
churn() {
  for i in $(seq 1 60); do
    psql_at "$PORT" shop -c "CREATE TABLE churn_$i AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g; DROP TABLE IF EXISTS churn_$((i - 1))" >/dev/null || return 1
  done
}
churn &
churner=$!
expect_exit 0 R --json pg backup --mode physical --service shop --dsn "$DSN"
assert_eq 0 "$(jq -r .summary.errors <<<"$OUT")" "errors of a base backup taken while tables come and go"
wait "$churner" || fail "table churn"
# A role with REPLICATION only (the classic backup role): "auto" streams, and says why.
psql_at "$PORT" shop -c "CREATE ROLE repl LOGIN REPLICATION" || fail "role repl"
REPL_DSN="host=$T/pg port=$PORT user=repl dbname=shop"
expect_exit 0 R --json pg backup --mode physical --service shop --dsn "$REPL_DSN"
assert_eq stream "$(jq -r .engine.source <<<"$OUT")" "source for a role that cannot see data_directory"
assert_contains "$(jq -r '.notices[]' <<<"$OUT")" "data_directory"
psql_at "$PORT" shop -c "GRANT pg_read_all_settings TO repl" || fail "grant"
expect_exit 0 R --json pg backup --mode physical --service shop --dsn "$REPL_DSN"
assert_eq stream "$(jq -r .engine.source <<<"$OUT")" "source for a role without pg_backup_start"
assert_contains "$(jq -r '.notices[]' <<<"$OUT")" "pg_backup_start"
expect_exit 1 R pg backup --mode physical --service shop --dsn "$REPL_DSN" --source datadir
assert_contains "$ERR" "pg_backup_start"
assert_eq 0 "$(psql_at "$PORT" shop -c "SELECT count(*) FROM pg_replication_slots")" "slots after a backup that could not start"
expect_exit 2 R pg backup --mode physical --service shop --dsn "$DSN" --source tape

step "a killed base backup writes no snapshot"
n1=$(R --json snapshots | jq length)
psql_at "$PORT" shop -c "CREATE TABLE filler AS SELECT i, md5(i::text) || repeat('z', 400) AS pad FROM generate_series(1, 400000) i" || fail "filler"
( rc=0; R pg backup --mode physical --service shop --dsn "$DSN" --source stream >"$T/killed.out" 2>&1 || rc=$?; echo $rc >"$T/killed.rc" ) &
bg=$!
for _ in $(seq 1 200); do pkill -9 -x pg_basebackup && break; sleep 0.05; done
wait "$bg" || true
assert_eq 1 "$(cat "$T/killed.rc")" "exit code of a backup whose pg_basebackup was killed"
assert_contains "$(cat "$T/killed.out")" "no snapshot written"
assert_eq "$n1" "$(R --json snapshots | jq length)" "snapshots after a killed base backup"
# cairn itself killed while it reads the data directory: the server ends the
# backup and drops the temporary slot when the session goes away.
as_pg env CAIRN_PASSWORD="$CAIRN_PASSWORD" "$C" --no-progress --repo "$REPO" pg backup --mode physical \
  --service shop --dsn "$DSN" --source datadir >/dev/null 2>&1 &
bg=$!
for _ in $(seq 1 200); do
  [ "$(psql_at "$PORT" shop -c "SELECT count(*) FROM pg_replication_slots")" = 1 ] && break
  sleep 0.02
done
pkill -9 -f -- "--source datadir" || fail "no base backup to kill"
wait "$bg" 2>/dev/null || true
assert_eq "$n1" "$(R --json snapshots | jq length)" "snapshots after a killed local base backup"
for _ in $(seq 1 100); do
  [ "$(psql_at "$PORT" shop -c "SELECT count(*) FROM pg_replication_slots")" = 0 ] && break
  sleep 0.1
done
assert_eq 0 "$(psql_at "$PORT" shop -c "SELECT count(*) FROM pg_replication_slots")" "slots after a killed backup"
psql_at "$PORT" shop -c "DROP TABLE filler" || fail "drop filler"
expect_exit 0 R --json pg backup --mode physical --service shop --dsn "$DSN"
base2=$(jq -r .snapshot_id <<<"$OUT")
assert_eq datadir "$(jq -r .engine.source <<<"$OUT")" "source of the base backup after the kill"

step "writer with commit timestamps; the repository vanishes for a while"
psql_at "$PORT" shop -c "CREATE TABLE ticks (id int PRIMARY KEY, t timestamptz DEFAULT clock_timestamp())" || fail "ticks"
writer() {  # writer FROM TO: one transaction per row, WAL switches, restore points
  psql_at "$PORT" shop -c "DO \$\$ BEGIN FOR i IN $1..$2 LOOP
      INSERT INTO ticks (id) VALUES (i); COMMIT;
      IF i % 40 = 0 THEN PERFORM pg_switch_wal(); END IF;
      IF i % 50 = 25 THEN PERFORM pg_create_restore_point('rp_' || i); END IF;
      PERFORM pg_sleep(0.005);
    END LOOP; END \$\$" || fail "writer $1..$2"
}
mv "$REPO" "$REPO.away"
writer 1 120
for _ in $(seq 1 100); do
  [ "$(psql_at "$PORT" shop -c 'SELECT failed_count FROM pg_stat_archiver')" -gt 0 ] && break
  sleep 0.1
done
[ "$(psql_at "$PORT" shop -c 'SELECT failed_count FROM pg_stat_archiver')" -gt 0 ] || fail "archiving did not fail while the repository was away"
mv "$REPO.away" "$REPO"
writer 121 300
wait_archived() {  # every finished segment archived: no .ready files left
  psql_at "$PORT" shop -c "SELECT pg_switch_wal()" >/dev/null
  for _ in $(seq 1 300); do
    ls "$DATA/pg_wal/archive_status/" | grep -q '\.ready$' || return 0
    sleep 0.1
  done
  tail "$DATA.log"; fail "WAL archiving did not catch up"
}
wait_archived
# Commit time, commit LSN marker and xid of chosen rows.
commit_ts() { psql_at "$PORT" shop -c "SELECT pg_xact_commit_timestamp(xmin) FROM ticks WHERE id = $1"; }
xid_of() { psql_at "$PORT" shop -c "SELECT xmin FROM ticks WHERE id = $1"; }

# restore_and_count NAME ARGS...: PITR into a new dir, start it on a free
# port without archiving, wait until recovery ended, print "count max".
restore_and_count() {
  local name=$1; shift
  local dir=$T/pg/$name
  R pg restore --service shop --target-dir "$dir" --key-file "$KEY" "$@" >"$T/$name.out" 2>&1 ||
    { cat "$T/$name.out" >&2; fail "pg restore $name"; }
  local port; port=$(free_port)
  printf "port = %s\narchive_mode = off\n" "$port" >>"$dir/postgresql.auto.conf"
  start_server "$dir" || { tail -20 "$dir.log" >&2; fail "restored server $name did not start"; }
  for _ in $(seq 1 300); do
    [ "$(psql_at "$port" shop -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "f" ] && break
    sleep 0.1
  done
  [ "$(psql_at "$port" shop -c 'SELECT pg_is_in_recovery()')" = "f" ] || { tail "$dir.log" >&2; fail "$name still in recovery"; }
  psql_at "$port" shop -F ' ' -c "SELECT count(*), coalesce(max(id), 0) FROM ticks"
  stop_server "$dir"
}

step "PITR by time: exactly the rows committed at or before the target"
for k in 77 211; do
  got=$(restore_and_count "time$k" --to-time "$(commit_ts $k)")
  assert_eq "$k $k" "$got" "rows after --to-time of row $k"
done

step "PITR by xid, by restore point, by LSN"
got=$(restore_and_count xid --to-xid "$(xid_of 150)")
assert_eq "150 150" "$got" "rows after --to-xid"
got=$(restore_and_count name --to-name rp_175)
assert_eq "175 175" "$got" "rows after --to-name rp_175"
lsn=$(psql_at "$PORT" shop -c "SELECT pg_current_wal_insert_lsn()")
psql_at "$PORT" shop -c "INSERT INTO ticks (id) VALUES (5001)" || fail "insert after LSN"
wait_archived
got=$(restore_and_count lsn --to-lsn "$lsn")
assert_eq "300 300" "$got" "rows after --to-lsn (row 5001 came later)"
got=$(restore_and_count latest)
assert_eq "301 5001" "$got" "rows after a restore to the end of the archive"

step "the base backup is chosen for the target; too early a target is refused"
expect_exit 0 R --json pg restore --service shop --target-dir "$T/pg/early" --key-file "$KEY" --to-time "$(commit_ts 5)"
assert_eq "$base2" "$(jq -r .base_backup <<<"$OUT")" "base backup for a target after the second one"
assert_eq true "$(jq -r .verified <<<"$OUT")" "restored files checked with pg_verifybackup"
rm -rf "$T/pg/early"
expect_exit 1 R pg restore --service shop --target-dir "$T/pg/tooearly" --key-file "$KEY" --to-time 2000-01-01T00:00:00Z
assert_contains "$ERR" "no base backup"

step "a target on a new timeline: restore, promote, write, restore again"
dir=$T/pg/tl2
R pg restore --service shop --target-dir "$dir" --key-file "$KEY" --to-time "$(commit_ts 100)" >/dev/null || fail "restore for timeline 2"
port2=$(free_port)
printf "port = %s\n" "$port2" >>"$dir/postgresql.auto.conf"  # keeps archiving into the same service
start_server "$dir" || fail "timeline 2 server"
for _ in $(seq 1 300); do [ "$(psql_at "$port2" shop -c 'SELECT pg_is_in_recovery()')" = "f" ] && break; sleep 0.1; done
psql_at "$port2" shop -c "INSERT INTO ticks (id) SELECT g FROM generate_series(9001, 9010) g" || fail "write on timeline 2"
psql_at "$port2" shop -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 300); do ls "$dir/pg_wal/archive_status/" | grep -q '\.ready$' || break; sleep 0.1; done
assert_eq 2 "$(psql_at "$port2" shop -c "SELECT timeline_id FROM pg_control_checkpoint()")" "timeline after promotion"
stop_server "$dir"
got=$(restore_and_count tl2again --target-timeline 2)
assert_eq "110 9010" "$got" "rows after a restore to the end of timeline 2"

step "pg check: continuous archive, recovery point; expire-wal keeps what base backups need"
expect_exit 0 R --json pg check --service shop
assert_eq true "$(jq -r .ok <<<"$OUT")" "archive continuity"
[ "$(jq -r .segments <<<"$OUT")" -gt 5 ] || fail "too few archived segments: $OUT"
[ "$(jq -r '.newest_age_seconds | floor' <<<"$OUT")" -lt 600 ] || fail "recovery point age: $OUT"
oldest_needed=$(jq -r .oldest_needed <<<"$OUT")
expect_exit 0 R --json pg expire-wal --service shop --dry-run
expired=$(jq -r '.removed | length' <<<"$OUT")
[ "$expired" -ge 1 ] || fail "nothing older than the first base backup to expire: $OUT"
jq -r '.removed[]' <<<"$OUT" | while read -r f; do [[ ${f:0:24} < $oldest_needed ]] || fail "would expire $f, needed from $oldest_needed"; done
expect_exit 0 R --json pg expire-wal --service shop
assert_eq "$expired" "$(jq -r '.removed | length' <<<"$OUT")" "expired files"
expect_exit 0 R pg check --service shop
got=$(restore_and_count afterexpiry --to-time "$(commit_ts 150)" --target-timeline current)  # timeline 2 branched at row 100
assert_eq "150 150" "$got" "rows after --to-time once old WAL expired"
expect_exit 0 R prune
expect_exit 0 R check --read-data
# A segment from the middle of the archive goes missing.
expect_exit 0 R --json pg check --service shop
victim=$(jq -r '[.files[] | select(.name | test("^[0-9A-F]{24}$"))] | .[(length / 2 | floor)].object' <<<"$OUT")
rm "$REPO/wal/$victim"
expect_exit 1 R pg check --service shop
assert_contains "$OUT" "MISSING"

step "wal-get: missing file exits 1 quietly, damaged entry exits 126 naming the file"
rc=0; R wal-get --service shop 0000000900000000000000FF "$T/pg/none" || rc=$?
assert_eq 1 "$rc" "exit code for a file not in the archive"
seg=$(ls "$DATA/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | head -1)
R wal-push --service shop "$DATA/pg_wal/$seg" || fail "pushing an archived segment again is fine"
cp "$DATA/pg_wal/$seg" "$T/pg/other" && printf 'x' | dd of="$T/pg/other" bs=1 seek=100 conv=notrunc 2>/dev/null
mkdir -p "$T/pg/tmp" && cp "$T/pg/other" "$T/pg/tmp/$seg" && chown -R "$PGUSER_OS" "$T/pg/tmp"
expect_exit 1 R wal-push --service shop "$T/pg/tmp/$seg"
assert_contains "$ERR" "different content"
dir=$T/pg/damaged
R pg restore --service shop --target-dir "$dir" --key-file "$KEY" --target-timeline 2 >/dev/null || fail "restore before damage shows"
# Damage the archived copy of the segment this recovery starts from (named in
# the restored backup_label), so recovery must fetch it.
start_seg=$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\))$/\1/p' "$dir/backup_label")
[[ -n $start_seg ]] || fail "no start segment in $dir/backup_label"
archive=$(R --json pg check --service shop || true)  # exits 1: a segment was removed above
victim=$(jq -r --arg s "$start_seg" '.files[] | select(.name == $s) | .object' <<<"$archive")
[[ -n $victim ]] || fail "segment $start_seg is not in the archive: $archive"
printf 'garbage' | dd of="$REPO/wal/$victim" bs=1 seek=40 conv=notrunc 2>/dev/null
printf "port = %s\narchive_mode = off\n" "$(free_port)" >>"$dir/postgresql.auto.conf"
start_server "$dir" >/dev/null 2>&1 || true  # recovery aborts: pg_ctl may see the server die
sleep 2
stop_server "$dir"
assert_contains "$(cat "$dir.log")" "exit status 126" "server log of recovery from a damaged archive"
assert_not_contains "$(cat "$dir.log")" "database system is ready to accept connections" "a recovery that hit damage must not finish"
expect_exit 1 R check
echo "PASS test_pg"
