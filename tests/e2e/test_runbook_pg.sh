# Runbook of a PostgreSQL 15 service with physical base backups and WAL
# archiving, against a real server: the runbook's recovery window, and its
# restore-pitr / restore-latest, start-server and verify blocks run exactly
# as printed (only the variables the runbook names are set) and bring back
# exactly the rows committed up to the chosen time, or all of them.
# Usage: bash tests/e2e/test_runbook_pg.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

PGBIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PGBIN/initdb" ]; then
  skip "PostgreSQL 15 is not installed (apt-get install postgresql-15; scripts/setup does)"
  exit 0
fi

# The server (archive_command, restore_command) runs as postgres when we are root.
chmod 755 "$T"
if [ "$(id -u)" -eq 0 ]; then
  as_pg() { runuser -u postgres -- "$@"; }
  PGUSER_OS=postgres
else
  as_pg() { "$@"; }
  PGUSER_OS=$(id -un)
fi
mkdir -p "$T/bin" "$T/pg"
cp "$CAIRN_BIN" "$T/bin/cairn"
chmod 755 "$T/bin" "$T/bin/cairn"
chown "$PGUSER_OS" "$T/pg"
export PATH="$T/bin:$PATH"
REPO=$T/pg/repo
KEY=$T/pg/cairn.key
as_pg "$T/bin/cairn" --no-progress init --repo "$REPO" --kdf-iterations 1 --kdf-memory 8 >/dev/null || fail "init"
as_pg env CAIRN_PASSWORD="$CAIRN_PASSWORD" "$T/bin/cairn" --repo "$REPO" key add --new-key-file "$KEY" >/dev/null ||
  fail "key add"

PORT=$(free_port)
DATA=$T/pg/data
as_pg "$PGBIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --locale=C >/dev/null || fail "initdb"
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$T/pg'
archive_mode = on
archive_command = '$T/bin/cairn --key-file $KEY --repo $REPO wal-push --service shop %p'
EOF
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA.log" -w -t 60 start >/dev/null || { cat "$DATA.log"; fail "server"; }
on_exit "as_pg '$PGBIN/pg_ctl' -D '$DATA' -m fast -w stop >/dev/null 2>&1"
sql() {  # sql PORT DB SQL
  as_pg "$PGBIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$T/pg" -p "$1" -U postgres -d "$2" -c "$3"
}
sql "$PORT" postgres "CREATE DATABASE shop" || fail "createdb"
sql "$PORT" shop "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)" ||
  fail "schema"

CFG=$T/pg/cairn.yaml
cat >"$CFG" <<YAML
repository:
  location: $REPO
  key_file: $KEY
services:
  shop:
    owner: team-shop
    tier: critical
    objectives: { rpo: 15m, rto: 1h }
    engine:
      type: postgres
      mode: physical
      dsn: "host=$T/pg port=$PORT user=postgres dbname=shop"
      wal_archiving: true
    schedule: "0 */6 * * *"
    drill:
      schedule: "0 3 * * 0"
      checks: ["SELECT count(*) >= 100 FROM orders"]
daemon:
  state: $T/pg/state.db
YAML
chmod 644 "$CFG"
as_pg "$T/bin/cairn" --no-progress --config "$CFG" backup --service shop >/dev/null || fail "base backup"
sql "$PORT" shop "INSERT INTO orders SELECT generate_series(101, 200)" || fail "batch 2"
TARGET_TIME=$(sql "$PORT" shop "SELECT now()")
sleep 1.1
sql "$PORT" shop "INSERT INTO orders SELECT generate_series(201, 300)" || fail "batch 3"
sql "$PORT" shop "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 300); do
  ls "$DATA/pg_wal/archive_status/" | grep -q '\.ready$' || break
  sleep 0.1
done

step "the runbook: recovery window, PITR commands, no drill yet (exit 3)"
expect_exit 3 cairn --config "$CFG" runbook --service shop --target-root "$T/pg"
printf '%s\n' "$OUT" >"$T/shop.md"
assert_contains "$OUT" "## Point-in-time recovery window"
assert_contains "$OUT" "| continuity | continuous |"
assert_contains "$OUT" "CRITICAL SERVICE WITHOUT A PASSING RESTORE DRILL"
assert_contains "$OUT" "key file $KEY"
for kind in restore-latest restore-pitr start-server verify; do
  assert_contains "$OUT" "\`\`\`sh $kind"
done
expect_exit 3 cairn --config "$CFG" --json runbook --service shop
jq -e '.pitr and (.recovery_window.from | length) > 0 and (.recovery_window.to | length) > 0 and
  .wal_archive.segments > 0 and (.wal_archive.missing | length) == 0' <<<"$OUT" >/dev/null || fail "json: $OUT"

extract() {  # extract FILE KIND: the block's text as printed
  python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r'^```sh ' + re.escape(sys.argv[2]) + r'\n(.*?)^```$', text, re.S | re.M)
if len(blocks) != 1:
    sys.exit(f"expected one ```sh {sys.argv[2]} block, found {len(blocks)}")
sys.stdout.write(blocks[0])
PY
}
run_block() {  # run_block KIND VAR=value...
  local kind=$1
  shift
  extract "$T/shop.md" "$kind" >"$T/$kind.sh" || fail "no $kind block"
  env "$@" PATH="$PATH" sh -e "$T/$kind.sh" >"$T/$kind.out" 2>&1 ||
    fail "$kind block failed:"$'\n'"$(cat "$T/$kind.sh")"$'\n'"--- output:"$'\n'"$(tail -30 "$T/$kind.out")"
}
# restore_and_count NAME RESTORE_KIND [VAR=value...]: runs the restore,
# start-server and verify blocks into $T/pg/NAME; "count max" of the
# restored orders goes to $T/NAME.count.
restore_and_count() {
  local name=$1 kind=$2 port
  shift 2
  port=$(free_port)
  on_exit "as_pg '$PGBIN/pg_ctl' -D '$T/pg/$name' -m fast -w stop >/dev/null 2>&1"
  run_block "$kind" CAIRN_RESTORE_TARGET="$T/pg/$name" "$@"
  run_block start-server CAIRN_RESTORE_TARGET="$T/pg/$name" CAIRN_RESTORE_PORT="$port"
  run_block verify CAIRN_RESTORE_TARGET="$T/pg/$name" CAIRN_RESTORE_PORT="$port"
  assert_contains "$(cat "$T/verify.out")" "recovery finished, server promoted"
  assert_contains "$(cat "$T/verify.out")" "check passed: SELECT count(*) >= 100 FROM orders"
  as_pg "$PGBIN/psql" -X -q -t -A -F ' ' -h "$T/pg/$name" -p "$port" -U postgres -d shop \
    -c "SELECT count(*), max(id) FROM orders" >"$T/$name.count" || fail "query of the restored server"
  as_pg "$PGBIN/pg_ctl" -D "$T/pg/$name" -m fast -w stop >/dev/null
}

step "restore-pitr + start-server + verify, as printed: exactly the rows up to the time"
restore_and_count pitr restore-pitr CAIRN_RESTORE_TIME="$TARGET_TIME"
assert_eq "200 200" "$(cat "$T/pitr.count")" "rows at the target time"

step "restore-latest + start-server + verify, as printed: every archived row"
restore_and_count shop restore-latest
assert_eq "300 300" "$(cat "$T/shop.count")" "rows at the end of the archive"
