# The web dashboard in a real browser: Debian's chromium, headless, driven by
# playwright-core (tests/e2e/dashboard.spec.mjs) against a real
# `cairn server --insecure-plain-http` on loopback. Three files services:
# shop (two backups through the API and a passing drill), blog (one backup,
# no drill), ledger (never backed up). The browser checks: a bad token is
# refused with a message; a viewer sees one row per service with the right
# compliance and status, charts, the drill report and runbook, and no restore
# control anywhere; a restorer scoped to shop,blog sees only those, browses a
# snapshot, restores shop's first snapshot through the wizard and sees the
# job succeed (the file is then on disk under the server's restore root with
# the first backup's bytes); an operator backs up blog but sees no restore
# control; an admin reads the restores in the audit log view. Screenshots go to $CAIRN_ARTIFACTS (default:
# <build dir>/test-artifacts/dashboard).
# Skips (exit 0) when chromium, node or playwright-core is missing
# (scripts/setup installs chromium; scripts/install-playwright the library).
# Usage: bash tests/e2e/test_dashboard.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
PLAYWRIGHT_CORE=${CAIRN_PLAYWRIGHT_CORE:-$ROOT/tools/node_modules/playwright-core}
CHROMIUM=${CAIRN_CHROMIUM:-$(command -v chromium || true)}
if [[ -z $CHROMIUM || ! -x $CHROMIUM ]]; then
  skip "*** chromium not installed (apt package chromium, see scripts/setup): the dashboard is not tested ***"
  exit 0
fi
if ! command -v node >/dev/null 2>&1 || [[ ! -f $PLAYWRIGHT_CORE/package.json ]]; then
  skip "*** playwright-core not installed ($PLAYWRIGHT_CORE): run scripts/install-playwright to test the dashboard ***"
  exit 0
fi
ARTIFACTS=${CAIRN_ARTIFACTS:-$(dirname -- "$CAIRN_BIN")/test-artifacts}/dashboard
rm -rf -- "$ARTIFACTS"
mkdir -p -- "$ARTIFACTS"

step "three files services, a repository, a server"
new_repo "$T/repo"
mkdir -p "$T/shop" "$T/blog" "$T/ledger"
printf 'order 1: first version\n' >"$T/shop/orders.txt"
random_file "$T/shop/blob.bin" 300000
echo "post" >"$T/blog/post.md"
echo "entry" >"$T/ledger/book.txt"
PORT=$(free_port)
cat >"$T/cairn.yaml" <<YAML
repository: $T/repo
services:
  shop:
    owner: team-shop
    tier: critical
    objectives: { rpo: 1h, rto: 30m }
    engine: { type: files, paths: [$T/shop] }
    schedule: "@hourly"
    drill: { schedule: "@weekly" }
  blog:
    owner: team-blog
    tier: low
    objectives: { rpo: 1d, rto: 4h }
    engine: { type: files, paths: [$T/blog] }
    schedule: "@daily"
  ledger:
    owner: team-finance
    tier: high
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: files, paths: [$T/ledger] }
    schedule: "@hourly"
daemon:
  state: $T/state/state.db
server:
  listen: 127.0.0.1:$PORT
  web: $ROOT/web
  restore_root: $T/restores
YAML
C() { cairn --config "$T/cairn.yaml" "$@"; }
expect_exit 0 C policy validate
ADMIN=$(C token create --name seed --role admin --services '*' 2>>"$T/tokens.log")
VIEWER=$(C token create --name vera --role viewer --services '*' 2>>"$T/tokens.log")
RESTORER=$(C token create --name rolf --role restorer --services shop,blog 2>>"$T/tokens.log")
OPERATOR=$(C token create --name otto --role operator --services blog 2>>"$T/tokens.log")
[[ $VIEWER == cairn_* && $RESTORER == cairn_* ]] || fail "token create printed: $VIEWER / $RESTORER"

# The binary itself in the background (not the C function: its PID would be a
# subshell's, and killing that would leave the server running).
"$CAIRN_BIN" --no-progress --config "$T/cairn.yaml" server --insecure-plain-http --listen "127.0.0.1:$PORT" \
  >"$T/server.log" 2>&1 &
SERVER_PID=$!
on_exit "kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null; cp -f '$T/server.log' '$ARTIFACTS/server.log' 2>/dev/null"
wait_port "$PORT" "$SERVER_PID" "$T/server.log"
BASE=http://127.0.0.1:$PORT

api() {  # api METHOD PATH: JSON to stdout, fails on an HTTP error
  local args=(-sS --fail-with-body -X "$1" -H "Authorization: Bearer $ADMIN")
  [[ $1 == POST ]] && args+=(-H 'Content-Type: application/json' -d '{}')
  curl "${args[@]}" "$BASE/api/v1$2" || fail "$1 $2 failed"
}
run_job() {  # run_job PATH: POSTs, waits for the job, prints its JSON
  local id state
  id=$(api POST "$1" | jq -r .job)
  for _ in $(seq 1 600); do
    api GET "/jobs/$id" >"$T/job.json"
    state=$(jq -r .state "$T/job.json")
    [[ $state != running ]] && break
    sleep 0.1
  done
  [[ $state == succeeded ]] || fail "job $1 ended $state: $(head -c 1000 "$T/job.json")"
  cat "$T/job.json"
}

step "the server serves the dashboard with its security headers"
curl -sS -D "$T/headers" -o "$T/index.html" "$BASE/" || fail "GET / failed"
assert_contains "$(cat "$T/index.html")" '<script type="module" src="app.js">' "index.html"
assert_contains "$(cat "$T/headers")" "Content-Security-Policy: default-src 'self'" "headers of /"
curl -sS -D "$T/headers" -o /dev/null "$BASE/app.js" || fail "GET /app.js failed"
assert_contains "$(tr -d '\r' <"$T/headers")" "Content-Type: text/javascript" "headers of app.js"
# Nothing the page loads comes from elsewhere (no CDN).
if grep -nE "(src|href)=\"(https?:)?//|import .*['\"]https?:|url\((https?:)?//" "$ROOT"/web/*; then
  fail "web/ refers to another origin"
fi

step "seeding: shop backed up twice and drilled, blog once, ledger never"
OLD_SNAPSHOT=$(run_job /services/shop/backups | jq -r .output.snapshot_id)
cp "$T/shop/orders.txt" "$T/orders.v1"
printf 'order 1: first version\norder 2: changed later\n' >"$T/shop/orders.txt"
sleep 1  # the two snapshots get different times on the timeline
run_job /services/shop/backups >/dev/null
run_job /services/shop/drills >/dev/null
run_job /services/blog/backups >/dev/null
api GET /services >"$T/services.json"
assert_eq "true true false" "$(jq -r '[.services[] | .compliant] | map(tostring) | join(" ")' "$T/services.json")" \
  "compliance of shop, blog, ledger"
[[ $OLD_SNAPSHOT =~ ^[0-9a-f]{64}$ ]] || fail "first snapshot id: $OLD_SNAPSHOT"

step "the browser (chromium $("$CHROMIUM" --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+)+' | head -1))"
# HOME: chromium wants a writable profile folder; keep it inside $T.
if ! HOME=$T/home PLAYWRIGHT_CORE=$PLAYWRIGHT_CORE CHROMIUM=$CHROMIUM BASE_URL=$BASE/ \
  VIEWER_TOKEN=$VIEWER RESTORER_TOKEN=$RESTORER OPERATOR_TOKEN=$OPERATOR ADMIN_TOKEN=$ADMIN OLD_SNAPSHOT=$OLD_SNAPSHOT RESTORE_TARGET=e2e-restore \
  ARTIFACTS=$ARTIFACTS timeout 300 node "$ROOT/tests/e2e/dashboard.spec.mjs"; then
  echo "server log (last 30 lines):" >&2
  tail -n 30 "$T/server.log" >&2
  fail "the browser checks failed; screenshots in $ARTIFACTS"
fi

step "the restored file is on disk with the first backup's bytes"
mapfile -t restored < <(find "$T/restores/e2e-restore/shop" -name orders.txt -type f)
assert_eq 1 "${#restored[@]}" "orders.txt files below $T/restores/e2e-restore/shop"
assert_file_same "$T/orders.v1" "${restored[0]}"
assert_file_same "$T/shop/blob.bin" "$(dirname -- "${restored[0]}")/blob.bin"
[[ ! -e $T/restores/e2e-restore/blog ]] || fail "the restore of shop wrote blog too"

step "the audit log names the restorer's restore"
api GET "/audit?limit=1000" >"$T/audit.json"
assert_eq 1 "$(jq '[.entries[] | select(.action == "restore.start" and .principal == "rolf" and (.result | startswith("ok")))] | length' "$T/audit.json")" \
  "successful restore.start entries by rolf"
assert_eq 0 "$(jq '[.entries[] | select(.principal == "vera" and .action == "restore.start")] | length' "$T/audit.json")" \
  "restore attempts by the viewer"
ls "$ARTIFACTS"/*.png >/dev/null || fail "no screenshots in $ARTIFACTS"
echo "screenshots: $ARTIFACTS"
