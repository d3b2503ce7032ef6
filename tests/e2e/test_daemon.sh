# cairn daemon with real child jobs, a real webhook receiver and promtool:
# runs on schedule, retention, retries, exactly one alert per failure and one
# resolution, anomaly alert, SIGHUP reload (and refusal of a broken file),
# metrics that pass promtool, state that survives a restart, SIGTERM with a
# cancelled job, `cairn status`, `cairn alert test`.
# Usage: bash tests/e2e/test_daemon.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
TOOLS=$(cd "$(dirname -- "${BASH_SOURCE[0]}")/../tools" && pwd)

REPO=$T/repo
new_repo "$REPO"
new_repo "$T/repo2"
mkdir -p "$T/data" && echo one >"$T/data/a"
echo 200000 >"$T/size"
HOOK_PORT=$(free_port)
METRICS_PORT=$(free_port)
python3 "$TOOLS/webhook_receiver.py" "$HOOK_PORT" "$T/alerts.jsonl" &
HOOK_PID=$!
on_exit "kill $HOOK_PID 2>/dev/null"
wait_port "$HOOK_PORT" "$HOOK_PID" /dev/null

# wait_for SECONDS 'condition': polls the condition every 0.2 s.
wait_for() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    eval "$2" && return 0
    sleep 0.2
  done
  fail "timed out after $1 s waiting for: $2"
}
alerts_with() {  # alerts_with NAME STATUS SERVICE: notifications received
  [[ -f $T/alerts.jsonl ]] || { echo 0; return; }
  jq -s --arg n "$1" --arg s "$2" --arg svc "$3" \
    '[.[] | select(.body.status == $s) | .body.alerts[] | select(.name == $n and .service == $svc)] | length' \
    "$T/alerts.jsonl"
}
snaps_of() { cairn --repo "$REPO" --json snapshots --service "$1" | jq length; }

write_config() {  # write_config BROKEN_COMMAND
  cat >"$T/cairn.yaml" <<YAML
repository: $REPO
services:
  files:
    owner: team-a
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: files, paths: [$T/data] }
    schedule: "@every 2s"
    retention: { last: 2 }
  flaky:
    owner: team-b
    tier: high
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: exec, command: "$1", filename: flaky.out }
    schedule: "@every 3s"
    retries: 1
    retry_delay: 1s
  shrink:
    owner: team-c
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: exec, command: "head -c \$(cat $T/size) /dev/urandom" }
    schedule: "@every 1s"
    retention: { last: 20 }
  slow:
    owner: team-d
    repository: $T/repo2
    objectives: { rpo: 3s, rto: 1h }
    engine: { type: exec, command: "sleep 4; echo slow" }
    schedule: "@every 2s"
daemon:
  state: $T/state.db
  listen: 127.0.0.1:$METRICS_PORT
  max_jobs: 3
  shutdown_grace: 2s
  prune: { schedule: "@every 5s" }
alerts:
  - name: hook
    webhook: http://127.0.0.1:$HOOK_PORT/alerts
YAML
}

start_daemon() {
  "$CAIRN_BIN" --config "$T/cairn.yaml" daemon >>"$T/daemon.log" 2>&1 &
  DPID=$!
  on_exit "kill -9 $DPID 2>/dev/null"
  wait_port "$METRICS_PORT" "$DPID" "$T/daemon.log"
}

step "policy valid; alert test reaches the receiver"
write_config "echo failing on purpose >&2; exit 4"
expect_exit 0 cairn --config "$T/cairn.yaml" policy validate
expect_exit 0 cairn --config "$T/cairn.yaml" alert test --service files
assert_eq 1 "$(alerts_with Test firing files)" "test alerts received"

step "daemon runs jobs on schedule; failing service: retried, one alert"
start_daemon
wait_for 30 '(( $(snaps_of files) >= 2 ))'
wait_for 30 '(( $(alerts_with BackupFailed firing flaky) >= 1 ))'
sleep 7  # two more failing schedule rounds
assert_eq 1 "$(alerts_with BackupFailed firing flaky)" "BackupFailed notifications for repeated failures"
assert_eq 0 "$(snaps_of flaky)" "snapshots of a failing command"
grep -q "flaky: backup failed (attempt 2/2)" "$T/daemon.log" || fail "no retry logged: $(tail -20 "$T/daemon.log")"
# Retention after each backup keeps 2 (one more may be in flight).
wait_for 10 '(( $(snaps_of files) <= 3 ))'
grep -q "prune of $REPO done" "$T/daemon.log" || wait_for 15 'grep -q "prune of $REPO done" "$T/daemon.log"'

step "metrics pass promtool"
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$T/metrics.txt" || fail "GET /metrics failed"
if command -v promtool >/dev/null; then
  promtool check metrics <"$T/metrics.txt" || fail "promtool check metrics: $(cat "$T/metrics.txt")"
fi
assert_contains "$(cat "$T/metrics.txt")" 'cairn_backup_last_success_timestamp_seconds{service="files"}'
assert_contains "$(cat "$T/metrics.txt")" 'cairn_backup_runs_total{result="failure",service="flaky"}'
assert_contains "$(cat "$T/metrics.txt")" 'cairn_rpo_objective_seconds{service="files"} 3600'
grep -Eq '^cairn_repository_size_bytes\{service="shrink"\} [1-9]' "$T/metrics.txt" ||
  fail "no repository size after a prune: $(grep repository_size "$T/metrics.txt")"

step "a dump 90% smaller raises an anomaly alert"
wait_for 90 '(( $(snaps_of shrink) >= 6 ))'
echo 20000 >"$T/size"
wait_for 20 '(( $(alerts_with BackupSizeAnomaly firing shrink) >= 1 ))'
echo 200000 >"$T/size"

step "a service whose recovery point ages past its RPO raises RPOBreach"
wait_for 30 '(( $(alerts_with RPOBreach firing slow) >= 1 ))'
jq -e -s '[.[] | .body.alerts[] | select(.name == "RPOBreach" and .service == "slow")][0] |
  .severity == "warning" and .owner == "team-d"' "$T/alerts.jsonl" >/dev/null || fail "RPOBreach alert body: $(tail -1 "$T/alerts.jsonl")"

step "SIGHUP with a broken file keeps the old policy"
cp "$T/cairn.yaml" "$T/good.yaml"
echo "  typo_key: 1" >>"$T/cairn.yaml"
kill -HUP "$DPID"
wait_for 10 'grep -q "keeping the old one" "$T/daemon.log"'
kill -0 "$DPID" || fail "daemon died on a broken reload"

step "fixing the service (SIGHUP) resolves its alert once"
write_config "echo fixed"
kill -HUP "$DPID"
wait_for 30 '(( $(alerts_with BackupFailed resolved flaky) >= 1 ))'
sleep 4
assert_eq 1 "$(alerts_with BackupFailed resolved flaky)" "resolved notifications"
(( $(snaps_of flaky) >= 1 )) || fail "no snapshot after the fix"

step "status: files compliant, slow not (exit 3)"
expect_exit 3 cairn --config "$T/cairn.yaml" --json status
jq -e '.services[] | select(.service == "files") | .compliant and .last_success != null' <<<"$OUT" >/dev/null ||
  fail "status of files: $OUT"
jq -e '(.services[] | select(.service == "slow") | .compliant == false) and .compliant == false' <<<"$OUT" >/dev/null ||
  fail "status of slow: $OUT"

step "SIGTERM: a running job past the grace period is cancelled; clean exit"
cat >>"$T/cairn.yaml" <<YAML
YAML
sed -i 's|command: "echo fixed"|command: "sleep 60; echo late"|' "$T/cairn.yaml"
kill -HUP "$DPID"
# Wait for the slow job itself: a "backup started" line in the log may still
# be the previous, quick run's (a race CI hit once).
wait_for 20 'pgrep -f "sleep 60; echo late" >/dev/null'
sleep 1
kill -TERM "$DPID"
for _ in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DPID" 2>/dev/null && fail "daemon still running 10 s after SIGTERM"
wait "$DPID" || fail "daemon exit status $? after SIGTERM: $(tail -20 "$T/daemon.log")"
pgrep -f "sleep 60; echo late" >/dev/null && fail "the cancelled job's command is still running"
sqlite3_count() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$T/state.db" "$1"; }
assert_eq 1 "$(sqlite3_count "select count(*) from runs where service='flaky' and result='cancelled'")" "cancelled runs"
assert_eq 0 "$(sqlite3_count "select count(*) from runs where result='running'")" "runs left running"

step "state survives a restart"
before=$(sqlite3_count "select count(*) from runs where service='files' and result='success'")
sed -i 's|command: "sleep 60; echo late"|command: "echo fine"|' "$T/cairn.yaml"
start_daemon
wait_for 20 "(( \$(sqlite3_count \"select count(*) from runs where service='files' and result='success'\") > $before ))"
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$T/metrics2.txt"
grep -q "cairn_backup_runs_total{result=\"cancelled\",service=\"flaky\"} 1" "$T/metrics2.txt" ||
  fail "cancelled run count lost across restart: $(grep runs_total "$T/metrics2.txt")"
kill -TERM "$DPID"
wait "$DPID" || fail "daemon exit status $?"
