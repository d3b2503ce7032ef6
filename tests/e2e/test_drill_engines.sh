# Restore drills of SQLite and Redis services: the SQLite database restores
# to a scratch file that passes integrity_check and the policy's SQL checks
# (a false one fails the drill with its value); the Redis dump passes
# redis-check-rdb, loads into a scratch redis-server that command checks
# reach through REDIS_PORT, and the server is gone afterwards.
# Usage: bash tests/e2e/test_drill_engines.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
unset CAIRN_CONFIG

REPO=$T/repo
new_repo "$REPO"
mkdir -p "$T/scratch" "$T/app"
chmod 755 "$T"
python3 - "$T/app/app.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)")
db.executemany("INSERT INTO orders (note) VALUES (?)", [(f"order {i}",) for i in range(250)])
db.commit()
PY
HAVE_REDIS=0
if command -v redis-server >/dev/null && command -v redis-check-rdb >/dev/null; then HAVE_REDIS=1; fi
REDIS_PORT_SRC=$(free_port)
write_config() {  # write_config SQLITE_CHECK
  cat >"$T/cairn.yaml" <<YAML
repository: $REPO
services:
  app:
    owner: team-app
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: sqlite, path: $T/app/app.db }
    schedule: "@daily"
    drill:
      checks:
        - "$1"
        - "exec: test -s \"\$CAIRN_DRILL_DB\""
  cache:
    owner: team-app
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: redis, host: 127.0.0.1, port: $REDIS_PORT_SRC }
    schedule: "@daily"
    drill:
      checks:
        - "exec: test \"\$(redis-cli -p \$REDIS_PORT GET greeting)\" = hello"
        - "exec: test \"\$(redis-cli -p \$REDIS_PORT LLEN queue)\" = 3"
  cache-slow:
    owner: team-app
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: redis, host: 127.0.0.1, port: $REDIS_PORT_SRC }
    schedule: "@daily"
    drill:
      checks:
        - "exec: sleep 300 # redis-drill-kill"
daemon: { state: $T/state.db }
YAML
}
C() { cairn --config "$T/cairn.yaml" "$@"; }
scratch_empty() { [[ -z $(ls -A "$T/scratch") ]] || fail "scratch folders left: $(ls "$T/scratch")"; }
write_config "SELECT count(*) = 250 FROM orders"
expect_exit 0 C policy validate

step "SQLite drill: integrity_check, SQL and command checks"
expect_exit 0 C backup --service app
expect_exit 0 C --json drill run --service app --scratch "$T/scratch"
jq -e '.passed and (.phases | map(.name)) == ["select","restore","checks"] and (.checks | length) == 3 and
  ([.checks[] | .passed] | all) and (.checks[0].output | startswith("ok"))' <<<"$OUT" >/dev/null ||
  fail "sqlite drill: $OUT"
scratch_empty

step "SQLite drill: a false SQL check fails the drill with its value"
write_config "SELECT count(*) = 7 FROM orders"
expect_exit 1 C --json drill run --service app --scratch "$T/scratch"
jq -e '(.passed | not) and (.checks[1].output | contains("returned 0"))' <<<"$OUT" >/dev/null ||
  fail "failing sqlite check: $OUT"
write_config "SELECT count(*) FROM no_such_table"
expect_exit 1 C --json drill run --service app --scratch "$T/scratch"
jq -e '(.passed | not) and (.checks[1].output | contains("no such table"))' <<<"$OUT" >/dev/null ||
  fail "sqlite check with an error: $OUT"
scratch_empty

if ((HAVE_REDIS == 0)); then
  skip "redis-server is not installed (apt-get install redis-server; scripts/setup does)"
  echo PASS
  exit 0
fi

step "Redis drill: redis-check-rdb, a scratch server, command checks; the server is gone afterwards"
mkdir -p "$T/redis-src"
if [ "$(id -u)" -eq 0 ] && id redis >/dev/null 2>&1; then
  chown redis: "$T/redis-src"
  AS_REDIS=(runuser -u redis --)
else
  AS_REDIS=()
fi
"${AS_REDIS[@]}" redis-server --port "$REDIS_PORT_SRC" --bind 127.0.0.1 --dir "$T/redis-src" --save '' \
  --appendonly no --daemonize no >"$T/redis-src.log" 2>&1 &
rpid=$!
on_exit "kill $rpid 2>/dev/null; pkill -f 'redis-server 127.0.0.1:$REDIS_PORT_SRC' 2>/dev/null"
wait_port "$REDIS_PORT_SRC" "$rpid" "$T/redis-src.log"
for _ in $(seq 1 100); do [ "$(redis-cli -p "$REDIS_PORT_SRC" PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT_SRC" SET greeting hello >/dev/null
redis-cli -p "$REDIS_PORT_SRC" RPUSH queue a b c >/dev/null
expect_exit 0 C backup --service cache
expect_exit 0 C --json drill run --service cache --scratch "$T/scratch"
jq -e '.passed and (.phases | map(.name)) == ["select","restore","recovery","checks"] and
  ([.checks[] | .passed] | all) and (.checks | length) == 4 and (.checks[1].output | startswith("2 keys"))' \
  <<<"$OUT" >/dev/null || fail "redis drill: $OUT"
scratch_empty
pgrep -f "$T/scratch" >/dev/null && fail "a scratch redis-server still runs: $(pgrep -af "$T/scratch")"

step "Redis drill: a failing command check fails the drill"
redis-cli -p "$REDIS_PORT_SRC" SET greeting changed >/dev/null
expect_exit 0 C backup --service cache
expect_exit 1 C --json drill run --service cache --scratch "$T/scratch"
jq -e '(.passed | not) and .failure == "1 check(s) failed"' <<<"$OUT" >/dev/null || fail "failing redis check: $OUT"
scratch_empty

step "SIGKILL during a Redis drill: the next drill stops the orphaned redis-server and removes its folder"
expect_exit 0 C backup --service cache-slow
"$CAIRN_BIN" --no-progress --config "$T/cairn.yaml" drill run --service cache-slow --scratch "$T/scratch" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do pgrep -f "redis-drill-kill" >/dev/null && break; sleep 0.1; done
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pkill -f "sleep 300 # redis-drill-kill" || true
orphans() {  # redis-servers working inside the scratch folder
  for p in $(pgrep -x redis-server); do
    [[ $(readlink "/proc/$p/cwd") == "$T/scratch/"* ]] && echo "$p"
  done
  return 0
}
[[ -n $(orphans) ]] || fail "expected the killed drill's redis-server (to test its cleanup)"
redis-cli -p "$REDIS_PORT_SRC" SET greeting hello >/dev/null
expect_exit 0 C backup --service cache
expect_exit 0 C drill run --service cache --scratch "$T/scratch"
scratch_empty
[[ -z $(orphans) ]] || fail "orphaned scratch redis-server still runs: $(orphans)"
echo PASS
