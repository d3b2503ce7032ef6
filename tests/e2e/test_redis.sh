# Redis engine against a real redis-server 7 started here: every key type
# (string, list, set, zset, hash, stream with a consumer group) in two
# databases, expiries, a 20 MB binary value; `cairn backup --service` with a
# password from ${VAR}, `cairn redis restore`, then a new redis-server on the
# restored dir holds the same data. Bad inputs: server unreachable, wrong
# password, unset variable, policy typos, a server that sends something that
# is not an RDB, one that stops mid-transfer, one that hangs (timeout), one
# that never answers.
# Usage: bash tests/e2e/test_redis.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

if ! command -v redis-server >/dev/null || ! command -v redis-check-rdb >/dev/null; then
  skip "redis-server is not installed (apt-get install redis-server; scripts/setup does)"
  exit 0
fi
unset CAIRN_CONFIG

# As root the servers run as the redis user, in folders it owns.
chmod 755 "$T"
if [ "$(id -u)" -eq 0 ] && id redis >/dev/null 2>&1; then
  AS_REDIS=(runuser -u redis --)
  own() { chown -R redis: "$@"; }
else
  AS_REDIS=()
  own() { :; }
fi

# start_redis NAME DIR [args...]: redis-server on a free port, never saving by
# itself; sets PORT_<NAME>; stopped on exit.
start_redis() {
  local name=$1 dir=$2 port pid
  shift 2
  mkdir -p "$dir"
  own "$dir"
  port=$(free_port)
  "${AS_REDIS[@]}" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --daemonize no "$@" >"$T/$name.log" 2>&1 &
  pid=$!  # runuser's (it passes SIGTERM on)
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  wait_port "$port" "$pid" "$T/$name.log"
  # Listening is not loaded: wait for PING.
  for _ in $(seq 1 300); do
    [ "$(redis-cli -p "$port" --no-auth-warning "${AUTH[@]}" PING 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  # The server itself too, so it is gone before $T is removed.
  local server_pid
  server_pid=$(redis-cli -p "$port" --no-auth-warning "${AUTH[@]}" INFO server | tr -d '\r' | sed -n 's/^process_id://p')
  [ -n "$server_pid" ] && on_exit "kill $server_pid 2>/dev/null"
  printf -v "PORT_$name" '%s' "$port"
}

export REDIS_PW="pw with spaces & symbols"
AUTH=(-a "$REDIS_PW")
step "source server with every key type, expiries and a 20 MB value"
start_redis src "$T/src" --requirepass "$REDIS_PW"
SRC=$PORT_src
rc() { redis-cli -p "$1" --no-auth-warning "${@:2}"; }
src() { rc "$SRC" "${AUTH[@]}" "$@" >/dev/null || fail "redis-cli $*"; }
src SET x:string "hello wörld"
src RPUSH x:list a b c d e
src SADD x:set red green blue
src ZADD x:zset 1 one 2.5 two -3 minus
src HSET x:hash f1 v1 f2 v2 f3 "$(printf 'bin\001ary')"
src XADD x:stream 1-1 sensor a temp 21
src XADD x:stream 2-1 sensor b temp 22
src XGROUP CREATE x:stream readers 0
src XREADGROUP GROUP readers alice COUNT 1 STREAMS x:stream '>'
src SET x:session token EX 86400
src HSET x:cart item 3
src PEXPIREAT x:cart 4102444800000  # 2100-01-01: exact after a restore
src -n 3 SET x:other-db here
src -n 3 SADD x:tags a b
src EVAL "for i = 1, 20000 do redis.call('SET', 'k:' .. i, i) end" 0
head -c $((20 * 1024 * 1024)) /dev/urandom >"$T/big.bin"
rc "$SRC" "${AUTH[@]}" -x SET x:big <"$T/big.bin" >/dev/null || fail "SET x:big"

# fingerprint PORT [auth...]: every x:* key's type, value and expiry, per
# database, plus the k:* keys' count and sum and the big value's digest.
fingerprint() {
  local port=$1 db key
  shift
  for db in 0 3; do
    echo "db$db: $(rc "$port" "$@" -n $db DBSIZE) keys"
    for key in $(rc "$port" "$@" -n $db --scan --pattern 'x:*' | sort); do
      local type
      type=$(rc "$port" "$@" -n $db TYPE "$key")
      echo "$key $type pexpiretime=$(rc "$port" "$@" -n $db PEXPIRETIME "$key" | sed 's/^[0-9]\{7,\}$/set/')"
      case $key:$type in
        x:big:string) rc "$port" "$@" -n $db EVAL "return redis.sha1hex(redis.call('GET', KEYS[1]))" 1 "$key" ;;
        *:string) rc "$port" "$@" -n $db GET "$key" ;;
        *:list) rc "$port" "$@" -n $db LRANGE "$key" 0 -1 ;;
        *:set) rc "$port" "$@" -n $db SMEMBERS "$key" | sort ;;
        *:zset) rc "$port" "$@" -n $db ZRANGE "$key" 0 -1 WITHSCORES ;;
        *:hash) rc "$port" "$@" -n $db HGETALL "$key" | paste - - | sort ;;
        *:stream)
          rc "$port" "$@" -n $db XRANGE "$key" - +
          rc "$port" "$@" -n $db XINFO GROUPS "$key"
          rc "$port" "$@" -n $db XPENDING "$key" readers ;;
      esac
    done
  done
  rc "$port" "$@" EVAL "local s = 0 for i = 1, 20000 do s = s + tonumber(redis.call('GET', 'k:' .. i)) end return s" 0
  # The absolute expiry of x:cart must survive exactly; x:session's is relative to "now".
  rc "$port" "$@" PEXPIRETIME x:cart
  [ "$(rc "$port" "$@" TTL x:session)" -gt 80000 ] && echo "session ttl kept"
}
fingerprint "$SRC" "${AUTH[@]}" >"$T/before.txt"
assert_contains "$(cat "$T/before.txt")" "db0: 20009 keys"
assert_contains "$(cat "$T/before.txt")" "session ttl kept"

REPO=$T/repo
new_repo "$REPO"
CLOSED=$(free_port)
write_policy() {  # write_policy EXTRA_YAML: the cache service plus EXTRA services
  cat >"$T/cairn.yaml" <<EOF
repository: $REPO
services:
  cache:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: redis, host: 127.0.0.1, port: $SRC, password: "\${REDIS_PW}"}
$1
EOF
}
write_policy "
  gone:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: '@daily'
    engine: {type: redis, port: $CLOSED}
  badpw:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: '@daily'
    engine: {type: redis, port: $SRC, password: \"\${WRONG_PW}\"}
  nopw:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: '@daily'
    engine: {type: redis, port: $SRC, password: \"\${NO_SUCH_VAR_FOR_REDIS}\"}
  files:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: '@daily'
    engine: {type: files, paths: [$T/src]}"
C() { cairn --config "$T/cairn.yaml" "$@"; }
expect_exit 3 C policy validate  # only the unset variable: a warning
assert_contains "$ERR" "environment variable NO_SUCH_VAR_FOR_REDIS is not set"

step "backup --service: redis-cli --rdb streamed into the repository"
expect_exit 0 C --json backup --service cache
id1=$(jq -r .snapshot_id <<<"$OUT")
expect_exit 0 cairn --repo "$REPO" --json snapshots
assert_eq "redis dump.rdb 20011" "$(jq -r '.[0].engine | "\(.type) \(.file) \(.keys)"' <<<"$OUT")" "engine metadata"
[ "$(jq -r '.[0].engine.redis_version' <<<"$OUT")" != null ] || fail "no redis_version in $OUT"
expect_exit 0 cairn --repo "$REPO" ls "$id1"
assert_contains "$OUT" "/dump.rdb"
assert_not_contains "$(cat "$T/.last.out" "$T/.last.err")" "$REDIS_PW" "output"

step "redis restore into a new dir; a new redis-server loads the same data"
expect_exit 0 C redis restore --service cache --target-dir "$T/restored"
assert_contains "$OUT" "RDB looks OK: 20011 keys read, 2 expires"
start_redis copy "$T/restored"
fingerprint "$PORT_copy" >"$T/after.txt"
diff "$T/before.txt" "$T/after.txt" >"$T/fp.diff" || fail "restored data differs:"$'\n'"$(head -30 "$T/fp.diff")"
cmp -s "$T/big.bin" <(rc "$PORT_copy" --raw GET x:big | head -c $((20 * 1024 * 1024))) || fail "x:big differs"

step "restore refuses to overwrite dump.rdb without --force; --snapshot picks one"
expect_exit 1 C redis restore --service cache --target-dir "$T/restored"
assert_contains "$ERR" "dump.rdb exists"
expect_exit 0 C redis restore --service cache --snapshot "${id1:0:8}" --target-dir "$T/restored" --force
expect_exit 0 C --json backup --service files
files_id=$(jq -r .snapshot_id <<<"$OUT")
expect_exit 2 C redis restore --service files --snapshot "$files_id" --target-dir "$T/x"
assert_contains "$ERR" "made by the files engine, not redis"
expect_exit 1 cairn --repo "$REPO" redis restore --service nosuch --target-dir "$T/x"
assert_contains "$ERR" "service nosuch has no redis snapshot"
mkdir -p "$T/aof/appendonlydir"
expect_exit 0 C redis restore --service cache --target-dir "$T/aof"
assert_contains "$ERR" "holds AOF files"

step "bad inputs: unreachable server, wrong password, unset variable: no snapshot"
n0=$(snapshot_count "$REPO")
expect_exit 1 C backup --service gone
assert_contains "$ERR" "service gone"
assert_contains "$ERR" "Connection refused"
export WRONG_PW="not-the-password-123"
expect_exit 1 C backup --service badpw
assert_contains "$ERR" "service badpw"
assert_contains "$ERR" "WRONGPASS"
assert_not_contains "$ERR" "$WRONG_PW" "error message"
expect_exit 2 C backup --service nopw
assert_contains "$ERR" "environment variable NO_SUCH_VAR_FOR_REDIS is not set"
assert_eq "$n0" "$(snapshot_count "$REPO")" "snapshots after failed backups"

step "policy typos and inline secrets are refused before anything runs"
cat >"$T/typo.yaml" <<EOF
repository: $REPO
services:
  cache:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: redis, prot: $SRC}
  inline:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: redis, password: hunter2}
  typo:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    engine: {type: rediss}
EOF
expect_exit 2 cairn --config "$T/typo.yaml" policy validate
assert_contains "$ERR" 'engine.prot: unknown key "prot" (did you mean "port"?)'
assert_contains "$ERR" "engine.password: a secret is written inline"
assert_contains "$ERR" 'unknown engine "rediss" (files, exec, postgres, mariadb, redis, sqlite or volume); did you mean "redis"?'
assert_not_contains "$ERR" "hunter2" "validation output"
expect_exit 2 cairn --config "$T/typo.yaml" backup --service cache
assert_eq "$n0" "$(snapshot_count "$REPO")" "snapshots after a policy typo"

step "a server that sends no RDB, stops mid-transfer, hangs or never answers: no snapshot"
# Speaks just enough RESP for redis-cli: +OK to everything, INFO, and a SYNC
# answer chosen by the mode ("silent" never answers at all).
cat >"$T/fake_redis.py" <<'PY'
import socket, sys, time
mode, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(8)
def commands(f):
    while True:
        line = f.readline()
        if not line: return
        if not line.startswith(b"*"): yield [line.strip().upper()]; continue
        args = []
        for _ in range(int(line[1:])):
            n = int(f.readline()[1:]); args.append(f.read(n + 2)[:-2])
        yield args
while True:
    c, _ = srv.accept(); f = c.makefile("rb")
    if mode == "silent": time.sleep(3600)
    for args in commands(f):
        cmd = args[0].upper()
        if cmd == b"INFO":
            body = b"# Server\r\nredis_version:7.0.99\r\nrole:master\r\n"
            c.sendall(b"$%d\r\n%s\r\n" % (len(body), body))
        elif cmd == b"SYNC":
            if mode == "notrdb":
                c.sendall(b"$11\r\nhello world")
            elif mode == "truncated":
                c.sendall(b"$100000\r\nREDIS0010" + b"x" * 1000)
            elif mode == "hang":
                c.sendall(b"$100000\r\nREDIS0010"); time.sleep(3600)
            break
        else:
            c.sendall(b"+OK\r\n")
    c.shutdown(socket.SHUT_RDWR); f.close(); c.close()
PY
for mode in notrdb truncated hang silent; do
  fport=$(free_port)
  python3 "$T/fake_redis.py" "$mode" "$fport" >"$T/fake-$mode.log" 2>&1 &
  fpid=$!
  on_exit "kill $fpid 2>/dev/null"
  wait_port "$fport" "$fpid" "$T/fake-$mode.log"
  cat >"$T/fake.yaml" <<EOF
repository: $REPO
services:
  fake:
    owner: team-cache
    objectives: {rpo: 1d, rto: 1h}
    schedule: "@daily"
    timeout: 3s
    engine: {type: redis, port: $fport}
EOF
  expect_exit 1 cairn --config "$T/fake.yaml" backup --service fake
  assert_contains "$ERR" "service fake"
  assert_contains "$ERR" "no snapshot written"
  case $mode in
    notrdb) assert_contains "$ERR" "not an RDB file" ;;
    truncated) assert_contains "$ERR" "redis-cli exited with status" ;;
    hang) assert_contains "$ERR" "timed out after" ;;
    silent) assert_contains "$ERR" "no answer to INFO within 3s" ;;
  esac
  kill "$fpid" 2>/dev/null || true
done
assert_eq "$n0" "$(snapshot_count "$REPO")" "snapshots after broken transfers"

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
