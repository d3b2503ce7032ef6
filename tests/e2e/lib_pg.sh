# A real PostgreSQL 15 whose WAL is archived into a cairn repository, for the
# drill and fleet tests. Source after lib.sh; skips the test when PostgreSQL
# 15 is missing. Sets C (a cairn binary the postgres user can run), REPO,
# KEY (a key file), PORT, DATA; defines as_pg, psql_at, start_archiving_pg
# SERVICE, insert FROM TO (rows into shop.orders, one commit each) and
# wait_archived.
# shellcheck shell=bash
PGBIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PGBIN/initdb" ]; then
  skip "PostgreSQL 15 is not installed (apt-get install postgresql-15; scripts/setup does)"
  exit 0
fi
# The server (and so archive_command) runs as postgres when we are root:
# everything it touches lives under a world-traversable folder.
chmod 755 "$T"
if [ "$(id -u)" -eq 0 ]; then
  PGUSER_OS=postgres
  as_pg() { runuser -u postgres -- "$@"; }
else
  PGUSER_OS=$(id -un)
  as_pg() { "$@"; }
fi
mkdir -p "$T/bin" "$T/pg"
cp "$CAIRN_BIN" "$T/bin/cairn"
chmod 755 "$T/bin" "$T/bin/cairn"
chown "$PGUSER_OS" "$T/pg"
C=$T/bin/cairn
REPO=$T/pg/repo
KEY=$T/pg/cairn.key
DATA=$T/pg/data
psql_at() {  # psql_at PORT DB ARGS...
  local port=$1 db=$2; shift 2
  as_pg "$PGBIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$T/pg" -p "$port" -U postgres -d "$db" "$@"
}
start_archiving_pg() {  # start_archiving_pg SERVICE: repository, key file, cluster, database shop
  as_pg "$C" --no-progress init --repo "$REPO" --kdf-iterations 1 --kdf-memory 8 >/dev/null || fail "init"
  as_pg env CAIRN_PASSWORD="$CAIRN_PASSWORD" "$C" --no-progress --repo "$REPO" key add --new-key-file "$KEY" \
    >/dev/null || fail "key add"
  PORT=$(free_port)
  as_pg "$PGBIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --locale=C --data-checksums >/dev/null ||
    fail "initdb"
  cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$T/pg'
wal_level = replica
archive_mode = on
archive_command = '$C --key-file $KEY --repo $REPO wal-push --service $1 %p'
EOF
  as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA.log" -w -t 60 start >/dev/null || { cat "$DATA.log"; fail "server"; }
  on_exit "as_pg '$PGBIN/pg_ctl' -D '$DATA' -m fast -w stop >/dev/null 2>&1"
  psql_at "$PORT" postgres -c "CREATE DATABASE shop" || fail "createdb"
  psql_at "$PORT" shop -c "CREATE TABLE orders (id int PRIMARY KEY, note text, t timestamptz DEFAULT clock_timestamp());
    CREATE INDEX ON orders (note)" || fail "schema"
}
insert() {  # insert FROM TO: one transaction per row
  psql_at "$PORT" shop -c "DO \$\$ BEGIN FOR i IN $1..$2 LOOP
      INSERT INTO orders (id, note) VALUES (i, 'order ' || i); COMMIT; END LOOP; END \$\$" || fail "insert $1..$2"
}
wait_archived() {  # every finished segment archived: no .ready files left
  psql_at "$PORT" shop -c "SELECT pg_switch_wal()" >/dev/null
  for _ in $(seq 1 300); do
    ls "$DATA/pg_wal/archive_status/" | grep -q '\.ready$' || return 0
    sleep 0.1
  done
  tail "$DATA.log"
  fail "WAL archiving did not catch up"
}
