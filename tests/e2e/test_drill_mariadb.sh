# Restore drills of a MariaDB service on a scratch server: the logical dump
# (two parallel streams) or a physical base as the server's data directory,
# plus the archived binlogs recover every commit to the latest point, or
# exactly the rows committed by a time (binlog times have whole seconds);
# CHECK TABLE and the policy's SQL and command checks run; a false check
# fails the drill; no scratch server or folder is left.
# Usage: bash tests/e2e/test_drill_mariadb.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=lib_mariadb.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib_mariadb.sh"
unset CAIRN_CONFIG

REPO=$T/repo
new_repo "$REPO"
# Unix socket paths are limited to 107 bytes: a short scratch root.
SCRATCH=$(mktemp -d /tmp/cdm.XXXXXX)
chmod 755 "$SCRATCH"
on_exit "rm -rf '$SCRATCH'"
start_mariadb src
S=$SOCK_src
M "$S" -e "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL);
           CREATE TABLE shop.notes (id INT PRIMARY KEY, body TEXT); INSERT INTO shop.notes VALUES (1, 'kept')" ||
  fail "schema"
# With the default database set: a one-database base replays only its
# database's statements (docs/engines/mariadb.md).
insert() { for i in $(seq "$1" "$2"); do M "$S" shop -e "INSERT INTO orders VALUES ($i, NOW(6))"; done; }
write_config() {  # write_config CHECK
  cat >"$T/cairn.yaml" <<YAML
repository: $REPO
services:
  shop:
    owner: team-shop
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: mariadb, socket: $S, user: root, databases: [shop], binlog_archiving: true, parallel: 2 }
    schedule: "@daily"
    drill:
      checks:
        - "$1"
        - "exec: test \$(mariadb --no-defaults -uroot -N -e 'SELECT count(*) FROM shop.orders') -ge 20"
  shop-physical:
    owner: team-shop
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: mariadb, mode: physical, socket: $S, user: root, binlog_archiving: true }
    schedule: "@daily"
    drill:
      checks:
        - "SELECT count(*) = 60 FROM shop.orders"
daemon: { state: $T/state.db }
YAML
}
D() { cairn --config "$T/cairn.yaml" "$@"; }
write_config "SELECT count(*) = 40 FROM orders"
expect_exit 0 D policy validate

step "a base, then commits before and after a whole second T, binlogs archived"
insert 1 20
expect_exit 0 D backup --service shop
expect_exit 0 D --json snapshots --service shop
assert_eq '["dump/tables-01.sql","dump/tables-02.sql","dump/objects.sql"]' "$(jq -c '.[0].engine.streams' <<<"$OUT")" \
  "streams of the parallel base"
insert 21 30
T_SEC=$(( $(date +%s) + 1 ))
while (($(date +%s) < T_SEC + 1)); do sleep 0.1; done
TARGET=$(date -u -d "@$T_SEC" +%Y-%m-%dT%H:%M:%SZ)
insert 31 40
expect_exit 0 D mariadb binlog-sync --service shop --flush

step "drill to the latest point: every archived commit, CHECK TABLE, SQL and command checks"
expect_exit 0 D --json drill run --service shop --scratch "$SCRATCH"
jq -e '.passed and (.phases | map(.name)) == ["select","provision","restore","checks"] and
  ([.checks[] | .passed] | all) and (.checks | length) == 4 and (.checks[1].output | endswith("tables OK"))' \
  <<<"$OUT" >/dev/null || fail "latest drill: $OUT"
[[ -z $(ls -A "$SCRATCH") ]] || fail "scratch folders left"
pgrep -f "$SCRATCH" >/dev/null && fail "a scratch mariadbd still runs"

step "drill to T: exactly the rows committed by T"
write_config "SELECT count(*) = 30 AND max(id) = 30 FROM orders"
expect_exit 0 D --json drill run --service shop --scratch "$SCRATCH" --point "$TARGET"
jq -e '.passed and ([.checks[] | .passed] | all)' <<<"$OUT" >/dev/null || fail "drill to $TARGET: $OUT"

step "a false SQL check fails the drill"
write_config "SELECT count(*) = 7 FROM orders"
expect_exit 1 D --json drill run --service shop --scratch "$SCRATCH"
jq -e '(.passed | not) and (.checks[] | select(.check | startswith("SELECT count(*) = 7")) | .output | contains("returned 0"))' \
  <<<"$OUT" >/dev/null || fail "failing check: $OUT"
[[ -z $(ls -A "$SCRATCH") ]] || fail "scratch folders left"

step "physical base (mariadb-backup) as the scratch server's data directory, binlogs replayed on top"
expect_exit 0 D backup --service shop-physical
insert 41 60
expect_exit 0 D mariadb binlog-sync --service shop-physical --flush
expect_exit 0 D --json drill run --service shop-physical --scratch "$SCRATCH"
jq -e '.passed and (.phases | map(.name)) == ["select","restore","provision","recovery","checks"] and
  ([.checks[] | .passed] | all) and (.checks[] | select(.check == "binlogs replayed") | .passed)' \
  <<<"$OUT" >/dev/null || fail "physical drill: $OUT"
[[ -z $(ls -A "$SCRATCH") ]] || fail "scratch folders left"
pgrep -f "$SCRATCH" >/dev/null && fail "a scratch mariadbd still runs"
echo PASS
