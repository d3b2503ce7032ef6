#!/usr/bin/env bash
# Bad input to cairn server (HTTPS, test CA): malformed JSON (400), bodies
# over 1 MiB (413), path traversal in parameters and restore targets
# (400/404, nothing written outside the restore root), a snapshot id of the
# other service of a shared repository (404), plain HTTP to the TLS port,
# certificate verification and TLS 1.1 (refused), brute force (429 with
# Retry-After, also for a good token from that address), slowloris clients
# (a normal request is still answered in bounded time); every request is in
# the audit log, which verifies, and edited / deleted / swapped / truncated
# copies of it fail verification naming the line.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
# shellcheck source=lib_server.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib_server.sh"
HERE=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

server_fixture tls
CA=$T/tls/ca.pem
make_token root admin '*'
ADMIN=(-H "Authorization: Bearer $TOKEN")
make_token restorer-shop restorer shop
RESTORER=(-H "Authorization: Bearer $TOKEN")
SHOP=$(snapshot_of shop)
BLOG=$(snapshot_of blog)
# shellcheck disable=SC2119 # no server options: HTTPS from the policy
start_server
AUDIT_START=$(wc -l <"$AUDIT" 2>/dev/null || echo 0)

# api STATUS METHOD PATH [curl options]: one HTTPS request (counted: each
# must appear in the audit log); fails unless the answer has STATUS, and an
# error answer is {"error": "..."}. The body is in $T/body.
NREQ=0
api() {
  local want=$1 method=$2 path=$3 code
  shift 3
  NREQ=$((NREQ + 1))
  code=$(curl -sS --max-time 30 --cacert "$CA" -o "$T/body" -w '%{http_code}' -X "$method" "$@" "$BASE$path") ||
    fail "$method $path: curl failed"
  [[ $code == "$want" ]] || fail "$method $path: expected $want, got $code: $(head -c 300 "$T/body")"
  if ((code >= 400)); then
    jq -e '.error | strings' "$T/body" >/dev/null 2>&1 || fail "$method $path: $code without an {\"error\"} body: $(head -c 300 "$T/body")"
  fi
}
post_json() {  # post_json STATUS PATH BODY [curl options]
  local want=$1 path=$2 body=$3
  shift 3
  api "$want" POST "$path" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

wait_job() {  # wait_job ID: until it ends (bounded); its view in $T/body
  local i
  for i in $(seq 1 150); do
    api 200 GET "/api/v1/jobs/$1" "${ADMIN[@]}"
    [[ $(jq -r .state "$T/body") == running ]] || return 0
    sleep 0.2
  done
  fail "job $1 still runs after 30 s"
}

step "malformed JSON bodies: 400"
# shellcheck disable=SC2016 # "$gt" is JSON, not a shell variable
for body in '{"target":' '' 'null' '[]' '"target"' '{"target": 5}' '{"target": "t", "to_time": 12}' \
  $'{"target": "\xff\xfe"}' '{"target": "t", "to_time": "yesterday"}' '{"target": {"$gt": ""}}' "{\"target\": \"$(printf 'a%.0s' {1..200})\"}"; do
  post_json 400 /api/v1/services/shop/restores "$body" "${ADMIN[@]}"
done
for body in '{' '{"services": "shop", "target": "t"}' '{"services": [], "target": "t"}' '{"target": "t"}' \
  '{"services": ["shop"]}' '{"services": ["shop"], "target": "../t"}'; do
  post_json 400 /api/v1/fleet/restores "$body" "${ADMIN[@]}"
done
api 400 GET "/api/v1/services/shop/runbook?format=pdf" "${ADMIN[@]}"
api 400 GET "/api/v1/services/shop/snapshots/$SHOP/files?path=" "${RESTORER[@]}"
# A POST without Content-Length is refused by the HTTP layer, in the API's shape (not audited: no API call).
code=$(curl -sS --cacert "$CA" -o "$T/body" -w '%{http_code}' -X POST "${ADMIN[@]}" "$BASE/api/v1/services/shop/backups")
assert_eq 400 "$code" "POST without Content-Length"
jq -e '.error | strings' "$T/body" >/dev/null || fail "POST without Content-Length: no JSON error: $(cat "$T/body")"

step "bodies over 1 MiB: 413 (also before authentication)"
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$T/big.json"
api 413 POST /api/v1/services/shop/restores -H 'Content-Type: application/json' --data-binary @"$T/big.json" "${ADMIN[@]}"
api 413 POST /api/v1/fleet/restores -H 'Content-Type: application/json' --data-binary @"$T/big.json"
# Exactly 1 MiB is accepted (and then is not a JSON object).
head -c $((1024 * 1024)) /dev/zero | tr '\0' ' ' >"$T/limit.json"
api 400 POST /api/v1/services/shop/restores -H 'Content-Type: application/json' --data-binary @"$T/limit.json" "${ADMIN[@]}"
# Beyond the HTTP layer's own limit (64 MiB): refused there, still as JSON.
head -c $((65 * 1024 * 1024)) /dev/zero >"$T/huge.bin"
code=$(curl -sS --cacert "$CA" -o "$T/body" -w '%{http_code}' -X POST --data-binary @"$T/huge.bin" "${ADMIN[@]}" \
  "$BASE/api/v1/services/shop/restores") || true
assert_eq 413 "$code" "65 MiB body"
rm -f "$T/huge.bin" "$T/big.json" "$T/limit.json"

step "path traversal in parameters: 400/404, nothing of blog, nothing outside the restore root"
for p in '..%2F..%2Fetc%2Fpasswd' '%2Fa%2F..%2Fb' '%2Fa%2F.%2Fb' '%2F..' '%2F..%2F..%2Fetc%2Fpasswd' 'etc%2Fpasswd' \
  '%2Fetc%00%2Fpasswd' '%2Ftmp%0A'; do
  api 400 GET "/api/v1/services/shop/snapshots/$SHOP/files?path=$p" "${RESTORER[@]}"
  api 400 GET "/api/v1/services/shop/snapshots/$SHOP/download?path=$p" "${RESTORER[@]}"
done
for svc in '..' '%2E%2E' '..%2Fblog' 'shop%2F..%2Fblog' '%2E%2E%2Fblog' 'blog%00' 'shop%2F' '.shop' 'sh*p'; do
  api 404 GET "/api/v1/services/$svc/snapshots" --path-as-is "${RESTORER[@]}"
  assert_not_contains "$(cat "$T/body")" "hello" "answer for service $svc"
  api 404 POST "/api/v1/services/$svc/restores" --path-as-is -H 'Content-Type: application/json' \
    --data-binary '{"target": "esc"}' "${RESTORER[@]}"
done
api 404 GET "/api/v1/services/shop/../blog/snapshots" --path-as-is "${RESTORER[@]}"
for target in '../x' '/abs' 'a/b' '..' '.' '-rf' '.hidden' 'x\n' "$T/outside" '..%2Fx' ' x'; do
  post_json 400 /api/v1/services/shop/restores "$(jq -cn --arg t "$target" '{target: $t}')" "${RESTORER[@]}"
  post_json 400 /api/v1/fleet/restores "$(jq -cn --arg t "$target" '{services: ["shop"], target: $t}')" "${RESTORER[@]}"
done
post_json 404 /api/v1/fleet/restores '{"services": ["../blog"], "target": "t"}' "${ADMIN[@]}"
post_json 404 /api/v1/fleet/restores '{"services": ["shop", "blog"], "target": "t"}' "${RESTORER[@]}"
for p in "$SRV/x" /abs /x "$T/outside" "$SRV/a" "$T/x"; do
  [[ ! -e $p ]] || fail "$p was written"
done
[[ ! -e $RESTORES || -z $(ls -A "$RESTORES") ]] || fail "a refused restore wrote below $RESTORES: $(ls -A "$RESTORES")"
# A good target works once, lands below the root, and is then taken (409).
post_json 202 /api/v1/services/shop/restores '{"target": "good"}' "${RESTORER[@]}"
wait_job "$(jq -r .job "$T/body")"
assert_eq succeeded "$(jq -r .state "$T/body")" "restore job $(cat "$T/body")"
assert_file_same "$T/data/shop/config.ini" "$RESTORES/good/shop$T/data/shop/config.ini"
post_json 409 /api/v1/services/shop/restores '{"target": "good"}' "${RESTORER[@]}"
assert_eq "good" "$(ls "$RESTORES")" "folders below the restore root"

step "a snapshot id of the other service in the shared repository: 404"
for token in RESTORER ADMIN; do
  declare -n tok=$token
  api 404 GET "/api/v1/services/shop/snapshots/$BLOG/files?path=%2F" "${tok[@]}"
  api 404 GET "/api/v1/services/shop/snapshots/$BLOG/download?path=$(jq -rn --arg p "$T/data/blog/posts/hello.md" '$p|@uri')" "${tok[@]}"
  assert_not_contains "$(cat "$T/body")" "hello world" "download of a blog file through shop"
  api 404 GET "/api/v1/services/shop/snapshots/${SHOP:0:8}/files" "${tok[@]}"
  api 404 GET "/api/v1/services/shop/snapshots/${SHOP^^}/files" "${tok[@]}"
done
api 404 DELETE "/api/v1/services/shop/snapshots/$BLOG" "${ADMIN[@]}"
api 404 GET "/api/v1/services/blog/snapshots/$SHOP/files" "${ADMIN[@]}"
api 200 GET "/api/v1/services/blog/snapshots/$BLOG/files?path=%2F" "${ADMIN[@]}"
C --json snapshots --service blog | jq -e --arg id "$BLOG" 'any(.[]; .id == $id)' >/dev/null ||
  fail "the blog snapshot is gone"
# Its own service's snapshot, though, an admin forgets.
api 202 DELETE "/api/v1/services/shop/snapshots/$SHOP" "${ADMIN[@]}"
wait_job "$(jq -r .job "$T/body")"
assert_eq succeeded "$(jq -r .state "$T/body")" "forget job $(cat "$T/body")"
C --json snapshots --service shop | jq -e --arg id "$SHOP" 'all(.[]; .id != $id)' >/dev/null ||
  fail "DELETE did not forget $SHOP"

step "plain HTTP to the HTTPS port fails cleanly; the server keeps serving"
rc=0
curl -sS --max-time 10 -o /dev/null "http://127.0.0.1:$PORT/api/v1/whoami" 2>"$T/plain.err" || rc=$?
((rc != 0 && rc != 28)) || fail "plain HTTP to the TLS port: curl exit $rc (0 = answered, 28 = hung)"
python3 - "$PORT" <<'PY' || fail "junk bytes to the TLS port were not answered by a close"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(b"\x00\xff" * 4096 + b"\r\n\r\n")
while s.recv(4096):
    pass
PY
api 200 GET /api/v1/whoami "${ADMIN[@]}"

step "TLS: the test CA verifies; no CA fails verification; TLS 1.1 is refused, 1.2 and 1.3 work"
rc=0
curl -sS --max-time 10 -o /dev/null "${ADMIN[@]}" "$BASE/api/v1/whoami" 2>/dev/null || rc=$?
assert_eq 60 "$rc" "curl without --cacert (60: certificate not verified)"
api 200 GET /api/v1/whoami --tlsv1.2 --tls-max 1.2 "${ADMIN[@]}"
api 200 GET /api/v1/whoami --tlsv1.3 "${ADMIN[@]}"
# SECLEVEL=0: the client would speak TLS 1.1, so a failure is the server's refusal.
if openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null >"$T/s11.out" 2>&1; then
  fail "a TLS 1.1 handshake succeeded: $(grep -E 'Protocol|Cipher' "$T/s11.out")"
fi
openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -CAfile "$CA" -verify_return_error </dev/null >"$T/s12.out" 2>&1 ||
  fail "TLS 1.2 handshake failed: $(tail -5 "$T/s12.out")"
rc=0
curl -sS --max-time 10 -o /dev/null --cacert "$CA" --tlsv1.0 --tls-max 1.1 --ciphers 'DEFAULT:@SECLEVEL=0' "$BASE/api/v1/whoami" 2>/dev/null ||
  rc=$?
((rc != 0)) || fail "curl with TLS <= 1.1 was answered"
api 200 GET /api/v1/whoami "${ADMIN[@]}"

step "brute force: 10 bad tokens from one address, then 429 with Retry-After, also for a good token"
# From 127.0.0.2 (loopback), so the test's other requests (from 127.0.0.1) go on.
BF=(--interface 127.0.0.2)
for i in $(seq 1 10); do
  api 401 GET /api/v1/whoami "${BF[@]}" -H "Authorization: Bearer guess-$i"
done
api 429 GET /api/v1/whoami "${BF[@]}" -H "Authorization: Bearer guess-11" -D "$T/headers"
retry=$(tr -d '\r' <"$T/headers" | awk -F': ' 'tolower($1) == "retry-after" {print $2}')
if ! [[ $retry =~ ^[0-9]+$ ]] || ((retry < 1 || retry > 60)); then fail "Retry-After: '$retry'"; fi
api 429 GET /api/v1/whoami "${BF[@]}" "${ADMIN[@]}"
api 429 GET /api/v1/services "${BF[@]}"
api 200 GET /api/v1/whoami "${ADMIN[@]}"

step "slowloris: 20 slow clients do not stop a normal request (bounded: 10 s each)"
python3 "$HERE/server_slowloris.py" 127.0.0.1 "$PORT" "$CA" 20 14 2 >"$T/slowloris.out" 2>&1 &
SLOW_PID=$!
on_exit "kill $SLOW_PID 2>/dev/null"
for _ in $(seq 1 100); do
  grep -q 'connections open' "$T/slowloris.out" && break
  kill -0 "$SLOW_PID" 2>/dev/null || fail "slowloris helper: $(cat "$T/slowloris.out")"
  sleep 0.1
done
sleep 3  # a header byte or two from every slow client
for i in 1 2 3; do
  # --max-time bounds it: a starved server fails here, not by hanging the test.
  api 200 GET /api/v1/services "${ADMIN[@]}" --max-time 10
  sleep 1
done
wait "$SLOW_PID" || fail "slowloris helper failed: $(cat "$T/slowloris.out")"
cat "$T/slowloris.out"
api 200 GET /api/v1/whoami "${ADMIN[@]}"

step "audit: every request above is in the log ($NREQ), the chain verifies"
api_entries=$(tail -n +"$((AUDIT_START + 1))" "$AUDIT" | jq -s '[.[] | select(.principal | startswith("cli:") | not)] | length')
assert_eq "$NREQ" "$api_entries" "API entries in the audit log"
audit_has() { tail -n +"$((AUDIT_START + 1))" "$AUDIT" | jq -se "any(.[]; $1)" >/dev/null || fail "no audit entry with $1"; }
audit_has '.result == "error 413" and .principal == "anonymous" and .action == "api.too_large"'
audit_has '.result == "rate_limited" and .source == "127.0.0.2" and .action == "auth.blocked"'
audit_has '.result == "unauthenticated" and .source == "127.0.0.2"'
audit_has '.action == "snapshot.browse" and (.result | startswith("error 400")) and (.object | contains("/etc/passwd"))'
audit_has '.action == "restore.start" and .principal == "restorer-shop" and .result == "ok" and (.object | startswith("good, job "))'
audit_has '.action == "restore.start" and (.result | startswith("error 409"))'
audit_has '.action == "snapshot.forget" and (.result | startswith("not_found"))'
expect_exit 0 C audit verify
assert_contains "$OUT" "chain intact"

step "audit: edited, deleted, swapped and truncated copies fail verification naming the line"
N=$(wc -l <"$AUDIT")
((N > 20)) || fail "only $N audit entries"
copy() {  # a copy of the log and its head
  cp "$AUDIT" "$T/copy.log"
  cp "$AUDIT.head" "$T/copy.log.head"
}
verify_fails_at() {  # verify_fails_at LINE WHAT
  expect_exit 1 C audit verify --file "$T/copy.log"
  assert_contains "$ERR" "copy.log:$1:" "$2 (stderr of audit verify)"
}
copy
expect_exit 0 C audit verify --file "$T/copy.log"
copy
python3 - "$T/copy.log" 7 <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
lines = open(path).read().split("\n")
e = json.loads(lines[n - 1])
e["result"] = "ok" if e["result"] != "ok" else "denied"
lines[n - 1] = json.dumps(e, separators=(",", ":"), sort_keys=True)
open(path, "w").write("\n".join(lines))
PY
verify_fails_at 7 "an edited line"
copy
sed -i '9d' "$T/copy.log"
verify_fails_at 9 "a deleted line"
copy
sed -i '12{h;d};13{G}' "$T/copy.log"
verify_fails_at 12 "two swapped lines"
copy
N=$(wc -l <"$T/copy.log")  # (audit verify itself may add CLI entries to the log)
sed -i '$d' "$T/copy.log"
verify_fails_at "$N" "the last line removed"
copy
N=$(wc -l <"$T/copy.log")
truncate -s -40 "$T/copy.log"
verify_fails_at "$N" "the last line truncated"
