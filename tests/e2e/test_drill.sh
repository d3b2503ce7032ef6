# Restore drills: a healthy service passes with a measured RTO; a failing
# check, a missed RTO objective and a corrupted pack (named) fail; the
# scratch folder is gone after success, failure and SIGTERM (after SIGKILL:
# at the next drill); reports are kept
# (drill list/show, JSON, Markdown); the daemon runs drills on schedule,
# raises one DrillFailed and one DrillOverdue alert (no passing drill within
# drill.max_age), runs the scheduled fleet drill and exports drill metrics.
# Usage: bash tests/e2e/test_drill.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
TOOLS=$(cd "$(dirname -- "${BASH_SOURCE[0]}")/../tools" && pwd)

REPO=$T/repo
new_repo "$REPO"
mkdir -p "$T/data/docs" "$T/scratch"
for i in 1 2 3; do echo "document $i" >"$T/data/docs/d$i.txt"; done
random_file "$T/data/blob.bin" $((3 * 1024 * 1024))
HOOK_PORT=$(free_port)
METRICS_PORT=$(free_port)

write_config() {  # write_config FILES_RTO EXTRA_CHECK
  cat >"$T/cairn.yaml" <<YAML
repository: $REPO
services:
  docs:
    owner: team-docs
    tier: critical
    objectives: { rpo: 1d, rto: $1 }
    engine: { type: files, paths: [$T/data] }
    schedule: "@daily"
    drill:
      schedule: "@every 3s"
      max_age: 5s
      checks:
        - "exec: test \$(ls .$T/data/docs | wc -l) -eq 3"
        - "exec: grep -q 'document 2' .$T/data/docs/d2.txt && echo content ok"
        - "$2"
  dump:
    owner: team-dump
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: exec, command: "seq 1 50000", filename: numbers.txt }
    schedule: "@daily"
    drill: { checks: ["exec: test \$(wc -l < numbers.txt) -eq 50000"] }
daemon:
  state: $T/state.db
  listen: 127.0.0.1:$METRICS_PORT
  fleet_drill: { schedule: "@every 4s", services: [dump] }
alerts:
  - webhook: http://127.0.0.1:$HOOK_PORT/hook
YAML
}
C() { cairn --config "$T/cairn.yaml" "$@"; }
scratch_empty() { [[ -z $(ls -A "$T/scratch") ]] || fail "scratch folders left: $(ls "$T/scratch")"; }

write_config 1h "exec: true"
expect_exit 0 C policy validate
expect_exit 0 C backup --service docs
expect_exit 0 C backup --service dump

step "a healthy drill passes, measured, scratch removed"
expect_exit 0 C --json drill run --service docs --scratch "$T/scratch"
jq -e '.passed and .rto_seconds > 0 and .files_restored == 4 and (.checks | length) == 4 and
  ([.checks[] | .passed] | all) and (.phases | map(.name)) == ["select","restore","checks"]' <<<"$OUT" >/dev/null ||
  fail "drill report: $OUT"
assert_eq "content ok" "$(jq -r '.checks[2].output' <<<"$OUT")" "output of a check"
scratch_empty
expect_exit 0 C drill run --service dump --scratch "$T/scratch"
assert_contains "$OUT" "drill of dump: PASSED"

step "a failing check fails the drill with its output"
write_config 1h "exec: echo 'orders table is empty' >&2; exit 1"
expect_exit 1 C --json drill run --service docs --scratch "$T/scratch"
jq -e '(.passed | not) and .failure == "1 check(s) failed" and
  (.checks[3].output | contains("orders table is empty"))' <<<"$OUT" >/dev/null || fail "failed drill: $OUT"
scratch_empty

step "passing checks but a missed RTO objective is a failed drill"
write_config 1s "exec: sleep 1.5"
expect_exit 1 C --json drill run --service docs --scratch "$T/scratch"
jq -e '(.passed | not) and (.failure | startswith("restore and checks took")) and .rto_seconds > 1' <<<"$OUT" >/dev/null ||
  fail "RTO drill: $OUT"

step "reports are kept: list, show, JSON, Markdown"
expect_exit 0 C --json drill list
assert_eq "false false true true" "$(jq -r '[.[] | .passed] | map(tostring) | join(" ")' <<<"$OUT")" "drill history"
expect_exit 0 C drill show --service docs --format md
assert_contains "$OUT" "# Restore drill: docs — FAILED"
assert_contains "$OUT" "| RTO (restore + checks) |"
first=$(C --json drill list --service dump | jq -r '.[0].id')
expect_exit 0 C --json drill show "$first"
jq -e '.service == "dump" and .passed' <<<"$OUT" >/dev/null || fail "drill show $first: $OUT"

step "SIGTERM during a drill: the check's processes die and the scratch folder is removed at once"
write_config 1h "exec: sleep 300 # drill-sigterm"
start_sleeping_drill() {
  "$CAIRN_BIN" --no-progress --config "$T/cairn.yaml" drill run --service docs --scratch "$T/scratch" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do pgrep -f "drill-sigterm" | grep -qv "^$pid$" && break; sleep 0.1; done
}
start_sleeping_drill
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
sleep 0.5
pgrep -f "sleep 300 # drill-sigterm" >/dev/null && fail "the drill's check still runs after SIGTERM"
scratch_empty

step "SIGKILL during a drill: the next drill removes the scratch folder"
start_sleeping_drill
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pkill -f "sleep 300 # drill-sigterm" || true
[[ -n $(ls -A "$T/scratch") ]] || fail "expected the killed drill's scratch folder (to test its cleanup)"
write_config 1h "exec: true"
expect_exit 0 C drill run --service dump --scratch "$T/scratch"
scratch_empty

step "a corrupted pack fails the drill and names the pack"
cp -a "$REPO" "$T/repo-good"
pack=$(find "$REPO/data" -type f -size +1M | head -1)
flip_byte "$pack" $(($(stat -c %s "$pack") / 2))
expect_exit 1 C --json drill run --service docs --scratch "$T/scratch"
jq -e --arg p "$(basename "$pack")" '(.passed | not) and (.failure | contains($p))' <<<"$OUT" >/dev/null ||
  fail "drill of a corrupted pack should name $(basename "$pack"): $OUT"
scratch_empty
rm -rf "$REPO" && mv "$T/repo-good" "$REPO"

step "the daemon runs drills on schedule: one DrillFailed alert, resolution, metrics"
python3 "$TOOLS/webhook_receiver.py" "$HOOK_PORT" "$T/alerts.jsonl" &
HOOK_PID=$!
on_exit "kill $HOOK_PID 2>/dev/null"
wait_port "$HOOK_PORT" "$HOOK_PID" /dev/null
write_config 1h "exec: exit 3"
"$CAIRN_BIN" --config "$T/cairn.yaml" daemon >"$T/daemon.log" 2>&1 &
DPID=$!
on_exit "kill -9 $DPID 2>/dev/null"
wait_port "$METRICS_PORT" "$DPID" "$T/daemon.log"
drill_alerts() {  # drill_alerts STATUS [NAME]
  [[ -f $T/alerts.jsonl ]] || { echo 0; return; }
  jq -s --arg s "$1" --arg n "${2:-DrillFailed}" \
    '[.[] | select(.body.status == $s) | .body.alerts[] | select(.name == $n)] | length' "$T/alerts.jsonl"
}
for _ in $(seq 1 150); do (($(drill_alerts firing) >= 1)) && break; sleep 0.2; done
sleep 4  # another failing drill: no second notification
assert_eq 1 "$(drill_alerts firing)" "DrillFailed notifications"
# max_age 5s without a passing drill: overdue as well.
for _ in $(seq 1 100); do (($(drill_alerts firing DrillOverdue) >= 1)) && break; sleep 0.2; done
assert_eq 1 "$(drill_alerts firing DrillOverdue)" "DrillOverdue notifications"
write_config 1h "exec: true"
kill -HUP "$DPID"
for _ in $(seq 1 150); do (($(drill_alerts resolved) >= 1)) && (($(drill_alerts resolved DrillOverdue) >= 1)) && break; sleep 0.2; done
assert_eq 1 "$(drill_alerts resolved)" "DrillFailed resolutions"
assert_eq 1 "$(drill_alerts resolved DrillOverdue)" "DrillOverdue resolutions"
for _ in $(seq 1 100); do grep -q "fleet drill passed" "$T/daemon.log" && break; sleep 0.2; done
grep -q "fleet drill passed" "$T/daemon.log" || fail "the scheduled fleet drill did not run: $(tail -5 "$T/daemon.log")"
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$T/metrics.txt"
grep -Eq '^cairn_drill_rto_seconds\{service="docs"\} [0-9.e-]+$' "$T/metrics.txt" ||
  fail "no drill RTO metric: $(grep drill "$T/metrics.txt")"
grep -Eq '^cairn_drill_last_success_timestamp_seconds\{service="docs"\} [1-9]' "$T/metrics.txt" ||
  fail "no drill success metric: $(grep drill "$T/metrics.txt")"
kill -TERM "$DPID"
wait "$DPID" || fail "daemon exit status $?"
