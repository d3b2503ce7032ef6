#!/usr/bin/env bash
# cairn server over HTTPS, end to end: tokens from the CLI, backups, restores
# and downloads through the API on a real repository, jobs recorded in the
# state store, the audit log (API and CLI entries, verify), graceful shutdown.
# (Role matrix: test_server_rbac.sh; bad input: test_server_input.sh.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

step "policy with two services in one repository, HTTPS with a test CA"
make_test_ca "$T/tls"
mkdir -p "$T/data/shop/sub" "$T/data/blog"
random_file "$T/data/shop/orders.db" 300000
echo "hello" >"$T/data/shop/sub/readme.txt"
echo "blog post" >"$T/data/blog/post.md"
new_repo "$T/repo"
printf "%s" "$CAIRN_PASSWORD" >"$T/pw"
PORT=$(free_port)
cat >"$T/cairn.yaml" <<YAML
repository: { location: $T/repo, password_file: $T/pw }
services:
  shop:
    owner: team-shop
    tier: high
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: files, paths: [$T/data/shop] }
    schedule: "0 3 * * *"
    retention: { daily: 7 }
  blog:
    owner: team-blog
    tier: low
    objectives: { rpo: 1d, rto: 4h }
    engine: { type: files, paths: [$T/data/blog] }
    schedule: "0 3 * * *"
    retention: { daily: 7 }
daemon: { state: $T/state/state.db }
server:
  listen: 127.0.0.1:$PORT
  tls: { cert: $T/tls/server.pem, key: $T/tls/server.key }
YAML
export CAIRN_CONFIG=$T/cairn.yaml
cairn backup --service blog --quiet

step "tokens: shown once, stored as hashes, unknown service refused"
expect_exit 0 cairn token create --name alice --role restorer --services shop
ALICE=$OUT
[[ $ALICE =~ ^cairn_[0-9a-f]{16}_[0-9a-f]{64}$ ]] || fail "token format: $ALICE"
expect_exit 0 cairn token create --name ops --role operator --services shop,blog --expires 1d
OPS=$OUT
expect_exit 2 cairn token create --name x --role viewer --services shpo
assert_contains "$ERR" 'did you mean "shop"'
expect_exit 2 cairn token create --name x --role superuser --services shop
expect_exit 2 cairn token create --name x --role agent --services '*'
grep -qa "${ALICE##*_}" "$T/state/state.db" "$T/state/state.db-wal" 2>/dev/null && fail "a token secret is stored in clear"
expect_exit 0 cairn --json token list
assert_eq 2 "$(jq length <<<"$OUT")" "tokens listed"

step "the server refuses plain HTTP off loopback and starts on HTTPS"
expect_exit 2 cairn server --insecure-plain-http --listen 0.0.0.0:$(free_port)
assert_contains "$ERR" "loopback"
"$CAIRN_BIN" server >"$T/server.log" 2>&1 &
SPID=$!
on_exit "kill $SPID 2>/dev/null; wait $SPID 2>/dev/null"
wait_port "$PORT" "$SPID" "$T/server.log"
api() {  # api TOKEN METHOD PATH [BODY]: prints the body, sets CODE
  local tok=$1 method=$2 path=$3 body=${4:-}
  local args=(-sS --cacert "$T/tls/ca.pem" -o "$T/resp" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $tok")
  [[ $method == POST || $method == DELETE ]] && args+=(-H 'Content-Type: application/json' --data "$body")
  CODE=$(curl "${args[@]}" "https://127.0.0.1:$PORT$path")
  cat "$T/resp"
}
curl -sS --cacert "$T/tls/ca.pem" "https://localhost:$PORT/healthz" | grep -q ok || fail "healthz over TLS"
curl -sS -o /dev/null "https://127.0.0.1:$PORT/healthz" 2>/dev/null && fail "an unknown CA was accepted"

step "whoami and the fleet view: only the token's services"
api "$ALICE" GET /api/v1/whoami >"$T/who.json"
assert_eq "200 alice restorer" "$CODE $(jq -r '.name + " " + .role' "$T/who.json")"
api "$ALICE" GET /api/v1/services >"$T/fleet.json"
assert_eq '["shop"]' "$(jq -c '[.services[].service]' "$T/fleet.json")" "alice sees only shop"
assert_eq false "$(jq '.services[0].compliant' "$T/fleet.json")" "never backed up: not compliant"
api "$ALICE" GET /api/v1/services/blog >/dev/null
assert_eq 404 "$CODE" "a foreign service is not found"

step "a backup through the API runs as a job and is recorded"
api "$OPS" POST /api/v1/services/shop/backups '' >"$T/job.json"
assert_eq 202 "$CODE"
JOB=$(jq -r .job "$T/job.json")
for _ in $(seq 1 100); do
  api "$OPS" GET "/api/v1/jobs/$JOB" >"$T/jobstate.json"
  [[ $(jq -r .state "$T/jobstate.json") != running ]] && break
  sleep 0.2
done
assert_eq succeeded "$(jq -r .state "$T/jobstate.json")" "backup job: $(cat "$T/jobstate.json")"
SNAP=$(jq -r .output.snapshot_id "$T/jobstate.json")
api "$ALICE" GET /api/v1/services/shop/runs >"$T/runs.json"
assert_eq "backup success $SNAP" "$(jq -r '.runs[0] | "\(.kind) \(.result) \(.snapshot_id)"' "$T/runs.json")"
api "$ALICE" GET /api/v1/services >"$T/fleet.json"
assert_eq true "$(jq '.services[0].compliant' "$T/fleet.json")" "compliant after the backup"

step "snapshots, browsing and downloads (file as is, folder as tar)"
api "$ALICE" GET /api/v1/services/shop/snapshots >"$T/snaps.json"
assert_eq "$SNAP" "$(jq -r '.snapshots[-1].id' "$T/snaps.json")"
api "$ALICE" GET "/api/v1/services/shop/snapshots/$SNAP/files?path=$T/data/shop" >"$T/files.json"
assert_eq "orders.db sub" "$(jq -r '[.entries[].path | split("/") | last] | sort | join(" ")' "$T/files.json")"
api "$ALICE" GET "/api/v1/services/shop/snapshots/$SNAP/download?path=$T/data/shop/orders.db" >"$T/orders.db"
assert_eq 200 "$CODE"
assert_file_same "$T/data/shop/orders.db" "$T/orders.db"
api "$ALICE" GET "/api/v1/services/shop/snapshots/$SNAP/download?path=$T/data/shop" >"$T/shop.tar"
mkdir "$T/untar" && tar -xf "$T/shop.tar" -C "$T/untar"
assert_file_same "$T/data/shop/sub/readme.txt" "$(find "$T/untar" -name readme.txt)"
BLOGSNAP=$(cairn --json snapshots --service blog | jq -r '.[-1].id')
api "$ALICE" GET "/api/v1/services/shop/snapshots/$BLOGSNAP/download?path=/" >/dev/null
assert_eq 404 "$CODE" "another service's snapshot in the same repository"
api "$OPS" GET "/api/v1/services/shop/snapshots/$SNAP/download?path=$T/data/shop/orders.db" >/dev/null
assert_eq 403 "$CODE" "an operator may not download"

step "a restore through the API lands below the restore root"
api "$ALICE" POST /api/v1/services/shop/restores '{"target":"incident-1"}' >"$T/job.json"
assert_eq 202 "$CODE" "$(cat "$T/job.json")"
JOB=$(jq -r .job "$T/job.json")
for _ in $(seq 1 100); do
  api "$ALICE" GET "/api/v1/jobs/$JOB" >"$T/jobstate.json"
  [[ $(jq -r .state "$T/jobstate.json") != running ]] && break
  sleep 0.2
done
assert_eq succeeded "$(jq -r .state "$T/jobstate.json")" "restore job: $(cat "$T/jobstate.json")"
assert_file_same "$T/data/shop/orders.db" "$T/state/restores/incident-1/shop$T/data/shop/orders.db"
api "$ALICE" POST /api/v1/services/shop/restores '{"target":"incident-1"}' >/dev/null
assert_eq 409 "$CODE" "an existing target is never overwritten"

step "a write-only agent backs up through the repository endpoint and can read nothing back"
expect_exit 0 cairn --repo "$T/repo" key add --agent --new-key-file "$T/agent.key"
expect_exit 0 cairn token create --name host-shop-1 --role agent --services shop
AGENT=$OUT
mkdir -p "$T/agent-data" && random_file "$T/agent-data/app.log" 200000
agent() { (cd "$T/agent-data" && env -u CAIRN_CONFIG -u CAIRN_PASSWORD CAIRN_TOKEN="$AGENT" \
  "$CAIRN_BIN" --no-progress --cacert "$T/tls/ca.pem" --key-file "$T/agent.key" "$@"); }
agent --repo "rest:https://127.0.0.1:$PORT/shop" backup --service shop --tag agent "$T/agent-data" >"$T/agent.out" 2>&1 ||
  fail "agent backup through the endpoint: $(cat "$T/agent.out")"
agent --repo "rest:https://127.0.0.1:$PORT/shop" snapshots >"$T/agent.out" 2>&1 && fail "an agent listed snapshots"
agent --repo "rest:https://127.0.0.1:$PORT/blog" backup --service blog "$T/agent-data" >"$T/agent.out" 2>&1 &&
  fail "an agent of shop wrote to blog"
api "$AGENT" GET /api/v1/services >/dev/null
assert_eq 403 "$CODE" "an agent token reads no API"
AGENT_SNAP=$(cairn --json snapshots --service shop | jq -r '[.[] | select(.written_by_agent)][0].id')
[[ $AGENT_SNAP =~ ^[0-9a-f]{64}$ ]] || fail "the agent's snapshot is not marked written_by_agent"
api "$ALICE" GET "/api/v1/services/shop/snapshots/$AGENT_SNAP/download?path=$T/agent-data/app.log" >"$T/app.log" ||
  fail "download of the agent's backup"
assert_eq 200 "$CODE" "the restorer reads what the agent wrote (snapshot list cached: ?fresh may be needed)"
assert_file_same "$T/agent-data/app.log" "$T/app.log"

step "revocation takes effect on the next request"
expect_exit 0 cairn token revoke ops
api "$OPS" GET /api/v1/whoami >/dev/null
assert_eq 401 "$CODE"

step "the audit log holds API and CLI actions and verifies"
expect_exit 0 cairn --json audit show --limit 500
AUDIT=$OUT
assert_contains "$AUDIT" '"action":"backup.trigger"'
assert_contains "$AUDIT" '"action":"snapshot.download"'
assert_contains "$AUDIT" '"action":"cli.token.create"'
assert_contains "$AUDIT" '"principal":"cli:'
assert_contains "$AUDIT" "for alice"   # the restore job's own CLI entry names who asked
assert_eq 1 "$(jq '[.[] | select(.action == "service.read" and (.result | startswith("not_found")))] | length' <<<"$AUDIT")" "the 404 for blog"
expect_exit 0 cairn audit verify
assert_contains "$OUT" "chain intact"

step "SIGTERM: the server drains and exits 0"
kill -TERM "$SPID"
wait "$SPID" || fail "server exit status $?: $(tail -5 "$T/server.log")"
assert_contains "$(cat "$T/server.log")" "shutting down"

step "--with-daemon: the scheduler runs in the same process and stops with it"
"$CAIRN_BIN" server --with-daemon >"$T/server2.log" 2>&1 &
SPID=$!
wait_port "$PORT" "$SPID" "$T/server2.log"
for _ in $(seq 1 50); do grep -q "daemon started" "$T/server2.log" && break; sleep 0.1; done
assert_contains "$(cat "$T/server2.log")" "daemon started: 2 service(s)"
kill -TERM "$SPID"
wait "$SPID" || fail "server exit status $?: $(tail -5 "$T/server2.log")"
assert_contains "$(cat "$T/server2.log")" "daemon stopped"
echo "PASS"
