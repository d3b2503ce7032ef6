# Restore drills of PostgreSQL services on scratch servers, against a real
# PostgreSQL 15 with WAL archived into cairn: a physical drill to the latest
# point recovers every archived commit, passes amcheck, SQL and command
# checks, and leaves the production archive untouched (no new timeline); a
# drill to a time recovers exactly the rows committed by then; a failing SQL
# check fails the drill; a logical service drills into a fresh cluster; after
# SIGTERM the scratch server and folder are gone at once, after SIGKILL the
# next drill removes them; reports render as Markdown and HTML.
# Usage: bash tests/e2e/test_drill_pg.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

# shellcheck source-path=SCRIPTDIR source=lib_pg.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib_pg.sh"
mkdir -p "$T/scratch"
# Only this test's servers: other tests (test_fleet) drill at the same time.
OWN_SCRATCH_SERVER="$T/scratch/.*cluster_name=cairn-drill"
no_scratch_server() {
  if pgrep -f "$OWN_SCRATCH_SERVER" >/dev/null; then
    pgrep -af "$OWN_SCRATCH_SERVER" >&2
    fail "a scratch PostgreSQL server still runs"
  fi
}
scratch_empty() { [[ -z $(ls -A "$T/scratch") ]] || fail "scratch folders left: $(ls "$T/scratch")"; }

step "cluster with WAL archived into cairn, a policy with a physical and a logical service"
start_archiving_pg shop
archive_histories() {  # timeline history files in the service's WAL archive
  as_pg "$C" --no-progress --key-file "$KEY" --repo "$REPO" --json pg check --service shop >"$T/check.json" || true
  jq -e .history_files "$T/check.json" || fail "pg check: $(cat "$T/check.json")"
}
write_config() {  # write_config SHOP_CHECK
  cat >"$T/cairn.yaml" <<YAML
repository: { location: $REPO, key_file: $KEY }
services:
  shop:
    owner: team-shop
    tier: critical
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: postgres, mode: physical, wal_archiving: true, dsn: "host=$T/pg port=$PORT user=postgres dbname=shop" }
    schedule: "0 */6 * * *"
    drill:
      schedule: "0 3 * * 0"
      checks:
        - "$1"
        - "exec: psql -X -t -A -c 'SELECT count(*) FROM orders' | grep -qx \"\$EXPECT_ROWS\""
  shop-dump:
    owner: team-shop
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: postgres, mode: logical, dsn: "host=$T/pg port=$PORT user=postgres dbname=shop" }
    schedule: "@daily"
    drill: { checks: ["SELECT count(*) >= 100 FROM orders"] }
daemon: { state: $T/state.db }
YAML
}
D() { EXPECT_ROWS=${EXPECT_ROWS:-0} cairn --config "$T/cairn.yaml" "$@"; }
write_config "SELECT count(*) = 300 FROM orders"
expect_exit 0 D policy validate

step "base backup, then more commits archived after it"
insert 1 100
expect_exit 0 D backup --service shop
insert 101 200
wait_archived
sleep 1.2
T_MID=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 1.2
insert 201 300
wait_archived
history_before=$(archive_histories)

step "drill to the latest point: every archived commit, amcheck, SQL and command checks"
EXPECT_ROWS=300 expect_exit 0 D --json drill run --service shop --scratch "$T/scratch"
jq -e '.passed and (.phases | map(.name)) == ["select","restore","verify","fetch","recovery","checks"] and
  ([.checks[] | .passed] | all) and (.checks | length) == 5 and .rpo_seconds < 3600 and .restored_to != ""' \
  <<<"$OUT" >/dev/null || fail "latest drill: $OUT"
assert_contains "$(jq -r '.checks[1].output' <<<"$OUT")" "indexes and"
assert_eq "pg_checksums --check" "$(jq -r '.checks[4].check' <<<"$OUT")" "data checksums checked"
scratch_empty
no_scratch_server
history_after=$(archive_histories)
assert_eq "$history_before" "$history_after" "timeline history files in the production archive after a drill"

step "drill to a time between the commits: exactly the rows committed by then"
write_config "SELECT count(*) = 200 AND max(id) = 200 FROM orders"
EXPECT_ROWS=200 expect_exit 0 D --json drill run --service shop --scratch "$T/scratch" --point "$T_MID"
jq -e '.passed and .point_time != "" and ([.checks[] | .passed] | all)' <<<"$OUT" >/dev/null ||
  fail "drill to $T_MID: $OUT"
scratch_empty

step "a failing SQL check fails the drill with its value"
write_config "SELECT count(*) = 1 FROM orders"
EXPECT_ROWS=300 expect_exit 1 D --json drill run --service shop --scratch "$T/scratch"
jq -e '(.passed | not) and (.failure | contains("1 check(s) failed")) and
  (.checks[] | select(.check == "SELECT count(*) = 1 FROM orders") | .output | contains("returned f"))' \
  <<<"$OUT" >/dev/null || fail "failing SQL check: $OUT"
scratch_empty
no_scratch_server

step "a logical service drills into a fresh cluster"
expect_exit 0 D backup --service shop-dump
expect_exit 0 D --json drill run --service shop-dump --scratch "$T/scratch"
jq -e '.passed and (.phases | map(.name)) == ["select","provision","restore","checks"] and
  ([.checks[] | .passed] | all)' <<<"$OUT" >/dev/null || fail "logical drill: $OUT"
scratch_empty
no_scratch_server

step "reports: Markdown and a well-formed HTML page"
expect_exit 0 D drill show --service shop-dump --format md
assert_contains "$OUT" "# Restore drill: shop-dump — PASSED"
expect_exit 0 D drill show --service shop-dump --format html
python3 - "$OUT" <<'PY' || fail "HTML report is not well-formed"
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.stack = []
    def handle_starttag(self, t, a):
        if t not in ("meta", "br", "hr", "img", "link", "input"): self.stack.append(t)
    def handle_endtag(self, t):
        if t in ("li", "p") and self.stack and self.stack[-1] != t: return
        assert self.stack and self.stack.pop() == t, t
p = P(); p.feed(sys.argv[1]); p.close()
assert p.stack == [], p.stack
assert "amcheck" in sys.argv[1]
PY

step "SIGTERM during the checks: the scratch server and folder are gone at once"
write_config "SELECT count(*) > 0 FROM orders"
sed -i 's/exec: psql.*"$/exec: sleep 300 # pg-drill-sigterm"/' "$T/cairn.yaml"
"$CAIRN_BIN" --no-progress --config "$T/cairn.yaml" drill run --service shop --scratch "$T/scratch" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do pgrep -f "pg-drill-sigterm" | grep -qv "^$pid$" && break; sleep 0.1; done
pgrep -f "pg-drill-sigterm" >/dev/null || fail "the drill never reached its checks"
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
sleep 0.5
pgrep -f "sleep 300 # pg-drill-sigterm" >/dev/null && fail "the drill's check still runs after SIGTERM"
scratch_empty
no_scratch_server

step "SIGKILL during the checks: the next drill stops the orphaned server and removes its folder"
"$CAIRN_BIN" --no-progress --config "$T/cairn.yaml" drill run --service shop --scratch "$T/scratch" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do pgrep -f "pg-drill-sigterm" | grep -qv "^$pid$" && break; sleep 0.1; done
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pkill -f "sleep 300 # pg-drill-sigterm" || true
pgrep -f "$OWN_SCRATCH_SERVER" >/dev/null || fail "expected the killed drill's server (to test its cleanup)"
write_config "SELECT count(*) > 0 FROM orders"
EXPECT_ROWS=300 expect_exit 0 D drill run --service shop-dump --scratch "$T/scratch"
scratch_empty
no_scratch_server
echo "PASS"
