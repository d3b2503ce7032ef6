#!/usr/bin/env bash
# The role matrix of cairn server, generated from docs/api.yaml
# (server_rbac.py): every operation x every role (viewer, operator,
# restorer, admin, agent, scoped to shop; an admin of '*') x own service
# (shop), foreign service (blog) and an unknown one, over HTTPS, against a
# real repository shared by two files services with real snapshots, real
# drill reports and real jobs. Allowed -> 2xx; denied -> 403 for a service
# the token sees, 404 for one it does not see (same answer as an unknown
# name); no/garbage/revoked/expired token -> 401 on every operation. Then
# the jobs it started end, their restores are below the restore root, and
# the audit log (every request) verifies.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
# shellcheck source=lib_server.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib_server.sh"
HERE=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
SPEC=$HERE/../../docs/api.yaml

step "repository with shop and blog, snapshots, drills"
server_fixture tls
# Snapshots a successful DELETE may forget (the helper gives each its own):
# shop is deleted by its admin and by the admin of '*', blog by the latter.
echo "order 3" >"$T/data/shop/orders/3.txt"
expect_exit 0 C backup --service shop
echo "order 4" >"$T/data/shop/orders/4.txt"
expect_exit 0 C backup --service shop
echo "second post" >"$T/data/blog/posts/second.md"
expect_exit 0 C backup --service blog
expect_exit 0 C drill run --service shop
expect_exit 0 C drill run --service blog
shop_drill=$(C --json drill list --service shop | jq '.[0].id')
blog_drill=$(C --json drill list --service blog | jq '.[0].id')
[[ $shop_drill =~ ^[0-9]+$ && $blog_drill =~ ^[0-9]+$ && $shop_drill != "$blog_drill" ]] ||
  fail "drill ids: shop '$shop_drill', blog '$blog_drill'"
# Oldest first: the helper browses the first and forgets from the end.
shop_snaps=$(C --json snapshots --service shop | jq -c 'sort_by(.time) | map(.id)')
blog_snaps=$(C --json snapshots --service blog | jq -c 'sort_by(.time) | map(.id)')
assert_eq 3 "$(jq length <<<"$shop_snaps")" "shop snapshots"
assert_eq 2 "$(jq length <<<"$blog_snaps")" "blog snapshots"

step "tokens for every role"
tokens='{}'
for role in viewer operator restorer admin agent; do
  make_token "$role-shop" "$role" shop
  tokens=$(jq -c --arg l "$role-shop" --arg r "$role" --arg t "$TOKEN" '.[$l] = {token: $t, role: $r, services: ["shop"]}' <<<"$tokens")
done
make_token root admin '*'
ADMIN_ALL=$TOKEN
tokens=$(jq -c --arg t "$ADMIN_ALL" '.["admin-all"] = {token: $t, role: "admin", services: ["*"]}' <<<"$tokens")
make_token revoked-viewer viewer shop
REVOKED=$TOKEN
expect_exit 0 C token revoke "$TOKEN_ID"
make_token short-lived restorer shop --expires 1s
EXPIRED=$TOKEN
# A token of the right shape that was never issued.
GARBAGE=${ADMIN_ALL//[0-9a-f]/0}

# shellcheck disable=SC2119 # no server options: HTTPS from the policy
start_server
CURL=(curl -sS --cacert "$T/tls/ca.pem" -H "Authorization: Bearer $ADMIN_ALL")

step "jobs of both services (for GET /jobs/{job})"
shop_job=$("${CURL[@]}" -X POST -H 'Content-Length: 0' "$BASE/api/v1/services/shop/backups" | jq -r .job)
blog_job=$("${CURL[@]}" -X POST -H 'Content-Length: 0' "$BASE/api/v1/services/blog/backups" | jq -r .job)
[[ $shop_job =~ ^[0-9a-f]+$ && $blog_job =~ ^[0-9a-f]+$ ]] || fail "jobs: '$shop_job' '$blog_job'"
wait_jobs() {  # until no job runs (bounded)
  local i
  for i in $(seq 1 300); do
    "${CURL[@]}" "$BASE/api/v1/jobs" >"$T/jobs.json" || fail "GET /api/v1/jobs"
    [[ $(jq '[.jobs[] | select(.state == "running")] | length' "$T/jobs.json") == 0 ]] && return 0
    sleep 0.2
  done
  fail "jobs still running after 60 s: $(jq -c '[.jobs[] | select(.state == "running")]' "$T/jobs.json")"
}
wait_jobs

jq -n --argjson tokens "$tokens" --arg garbage "$GARBAGE" --arg revoked "$REVOKED" --arg expired "$EXPIRED" \
  --argjson ss "$shop_snaps" --argjson bs "$blog_snaps" --argjson sd "$shop_drill" --argjson bd "$blog_drill" \
  --arg sj "$shop_job" --arg bj "$blog_job" --arg ca "$T/tls/ca.pem" '{
    tokens: $tokens,
    bad_tokens: {"garbage token": $garbage, "revoked token": $revoked, "expired token": $expired},
    own: "shop", foreign: "blog",
    ids: {shop: {snapshot: $ss, drill: $sd, job: $sj}, blog: {snapshot: $bs, drill: $bd, job: $bj}},
    cacert: $ca}' >"$T/fixture.json"

step "the matrix (docs/api.yaml x roles x services)"
python3 "$HERE/server_rbac.py" "$SPEC" "$BASE" "$T/fixture.json" || fail "RBAC matrix failed (above)"

step "the jobs it started end; restores are below the restore root only"
wait_jobs
jq -e '[.jobs[] | select(.kind == "restore" or .kind == "fleet-restore")] | length > 0' "$T/jobs.json" >/dev/null ||
  fail "no restore job was started: $(cat "$T/jobs.json")"
# Every job an allowed request started did its work (backups, drills,
# restores, forget of one snapshot, retention).
jq -e 'all(.jobs[]; .state == "succeeded")' "$T/jobs.json" >/dev/null ||
  fail "failed jobs: $(jq -c '[.jobs[] | select(.state != "succeeded") | {kind, services, started_by, error}]' "$T/jobs.json")"
for kind in backup drill restore fleet-restore forget; do
  jq -e --arg k "$kind" 'any(.jobs[]; .kind == $k)' "$T/jobs.json" >/dev/null || fail "no $kind job was started"
done
# Each restorer/admin restore of shop went to restores/rbac-N/shop.
targets=$(jq -r '.jobs[] | select(.state == "succeeded") | .output.services[]?.target // empty' "$T/jobs.json")
[[ -n $targets ]] || fail "no restore succeeded: $(jq -c '[.jobs[] | {kind, state, error}]' "$T/jobs.json")"
while read -r t; do
  [[ $t == "$RESTORES"/rbac-*/* ]] || fail "a restore went to $t, outside $RESTORES"
  [[ -f $t$T/data/shop/config.ini || -f $t$T/data/blog/posts/hello.md ]] || fail "restore $t is empty"
done <<<"$targets"
# No restore of blog through a token that does not see it.
for d in "$RESTORES"/*/blog; do
  [[ -e $d ]] || continue
  t=$(basename "$(dirname "$d")")
  jq -e --arg t "$t" '.jobs[] | select(.started_by == "root" and (.output.services[]?.target | endswith("/" + $t + "/blog")))' \
    "$T/jobs.json" >/dev/null || fail "$d was restored by someone other than the admin of every service"
done

step "audit: refusals are recorded, the chain verifies"
expect_exit 0 C audit verify
audit_has() {  # audit_has JQ_CONDITION: some entry of the log matches
  jq -se "any(.[]; $1)" "$AUDIT" >/dev/null || fail "no audit entry with $1"
}
audit_has '.principal == "viewer-shop" and .action == "backup.trigger" and .service == "shop" and (.result | startswith("denied"))'
audit_has '.principal == "agent-shop" and (.result | startswith("not_found")) and .object == "asked for blog"'
audit_has '.principal == "anonymous" and .result == "unauthenticated"'
audit_has '.principal == "restorer-shop" and .action == "restore.start" and .result == "ok"'
