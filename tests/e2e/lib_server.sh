# Fixture for the `cairn server` end-to-end tests (test_server_*.sh): a real
# repository shared by two `files` services (shop, blog) with real snapshots,
# a policy with a daemon state (tokens) and optionally TLS, tokens, and a
# server started on a free port. Source after lib.sh.
#
#   server_fixture [tls]   repository, data, policy ($CONF), backups of both
#                          services; with "tls": a test CA ($T/tls/ca.pem, lib.sh
#                          make_test_ca) and the server's certificate
#   C ARGS...              cairn --config $CONF ARGS...
#   make_token NAME ROLE SERVICES [--expires D]   sets $TOKEN (the secret) and
#                          $TOKEN_ID
#   start_server [--insecure-plain-http]          starts it on $PORT ($SRV_PID,
#                          log $T/server.log); $BASE is its URL
#   stop_server
#   snapshot_of SERVICE    a snapshot id of SERVICE (the newest)

# shellcheck shell=bash disable=SC2034 # the variables are for the tests
SRV=$T/srv  # daemon state, tokens, audit log, restores
CONF=$T/cairn.yaml
AUDIT=$SRV/audit.log
RESTORES=$SRV/restores

C() { cairn --config "$CONF" "$@"; }

server_fixture() {
  local tls=${1:-}
  new_repo "$T/repo"
  mkdir -p "$T/data/shop/orders" "$T/data/blog/posts" "$SRV"
  echo "order 1" >"$T/data/shop/orders/1.txt"
  echo "order 2" >"$T/data/shop/orders/2.txt"
  echo "shop config" >"$T/data/shop/config.ini"
  echo "hello world" >"$T/data/blog/posts/hello.md"
  PORT=$(free_port)
  {
    cat <<YAML
repository: $T/repo
services:
  shop:
    owner: team-shop
    tier: critical
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: files, paths: [$T/data/shop] }
    schedule: "@daily"
    drill: { schedule: "@weekly", checks: ["exec: test -f .$T/data/shop/config.ini"] }
  blog:
    owner: team-blog
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: files, paths: [$T/data/blog] }
    schedule: "@daily"
daemon:
  state: $SRV/state.db
YAML
    if [[ $tls == tls ]]; then
      make_test_ca "$T/tls"
      echo "server: { listen: 127.0.0.1:$PORT, tls: { cert: $T/tls/server.pem, key: $T/tls/server.key } }"
    else
      echo "server: { listen: 127.0.0.1:$PORT }"
    fi
  } >"$CONF"
  expect_exit 0 C policy validate
  expect_exit 0 C backup --service shop
  expect_exit 0 C backup --service blog
}

make_token() {  # make_token NAME ROLE SERVICES [more token create options]: sets TOKEN and TOKEN_ID
  local name=$1 role=$2 services=$3 out
  shift 3
  out=$(C --json token create --name "$name" --role "$role" --services "$services" "$@") ||
    fail "token create $name ($role for $services) failed"
  TOKEN=$(jq -r .token <<<"$out")
  TOKEN_ID=$(jq -r .id <<<"$out")
}

start_server() {  # start_server [server options]
  # The binary itself in the background (not the C function: its PID would be a subshell's).
  "$CAIRN_BIN" --no-progress --config "$CONF" server "$@" >"$T/server.log" 2>&1 &
  SRV_PID=$!
  on_exit "stop_server"
  wait_port "$PORT" "$SRV_PID" "$T/server.log"
  if [[ " $* " == *" --insecure-plain-http "* ]]; then BASE=http://127.0.0.1:$PORT; else BASE=https://127.0.0.1:$PORT; fi
}

stop_server() {
  [[ -n ${SRV_PID:-} ]] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null
  wait "$SRV_PID" 2>/dev/null
  SRV_PID=
}

snapshot_of() {  # the newest snapshot id of a service
  C --json snapshots --service "$1" | jq -r 'max_by(.time) | .id'
}
