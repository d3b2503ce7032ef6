#!/usr/bin/env bash
# Daemon load: N services (default 200) on 1-minute schedules for D minutes
# (default 10) on this machine, with the default concurrency (= cores).
# Reports runs started per minute against the schedule, missed-run alerts,
# failures and the daemon's peak RSS (VmHWM). Not a test: numbers for
# docs/benchmarks.md.
# Usage: bench/daemon_load.sh [services] [minutes]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
MIN=${2:-10}
cairn=$(pwd)/build/release/cairn
[ -x "$cairn" ] || scripts/setup release >/dev/null
work=$(mktemp -d /tmp/cairn-daemon-load.XXXXXX)
trap 'kill $dpid 2>/dev/null; rm -rf "$work"' EXIT
export CAIRN_PASSWORD=load-test
"$cairn" --repo "$work/repo" init --kdf-seconds 0.05 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  echo "repository: $work/repo"
  echo "daemon: { state: $work/state.db, listen: 127.0.0.1:$port }"
  echo "services:"
  for i in $(seq 1 "$N"); do
    cat <<YAML
  svc-$i:
    owner: team-$((i % 10))
    objectives: { rpo: 5m, rto: 1h }
    engine: { type: exec, command: "echo service $i; date +%s%N" }
    schedule: "* * * * *"
    retention: { last: 3 }
YAML
  done
} >"$work/cairn.yaml"
"$cairn" --config "$work/cairn.yaml" policy validate >/dev/null
"$cairn" --config "$work/cairn.yaml" daemon >"$work/daemon.log" 2>&1 &
dpid=$!
start=$(date +%s)
sleep $((MIN * 60))
hwm=$(awk '/VmHWM/ {print $2}' /proc/$dpid/status)
missed=$(curl -s "http://127.0.0.1:$port/metrics" >/dev/null; grep -c "BackupMissed" "$work/daemon.log" || true)
kill -TERM $dpid
wait $dpid || true
python3 - "$work/state.db" "$start" "$MIN" "$N" "$hwm" <<'PY'
import sqlite3, sys
db, start, minutes, n, hwm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
c = sqlite3.connect(db)
rows = c.execute("select started_at, result, duration_s from runs where kind='backup'").fetchall()
ok = sum(1 for r in rows if r[1] == 'success')
fail = sum(1 for r in rows if r[1] == 'failure')
per_min = {}
for s, _, _ in rows:
    per_min[(s - start) // 60] = per_min.get((s - start) // 60, 0) + 1
full = [per_min.get(m, 0) for m in range(minutes)]
durs = sorted(r[2] for r in rows if r[1] == 'success')
lat = c.execute("select max(started_at % 60) from runs where kind='backup'").fetchone()[0]
forget = c.execute("select count(*), sum(result='failure') from runs where kind='forget'").fetchone()
print(f"services {n}, {minutes} min: backup runs {len(rows)} (expected ~{n*minutes}), ok {ok}, failed {fail}")
print(f"runs started per minute: {full}")
print(f"backup duration median {durs[len(durs)//2]:.3f}s p99 {durs[int(len(durs)*0.99)]:.3f}s; latest start {lat}s into a minute")
print(f"forget runs {forget[0]}, failed {forget[1]}; daemon peak RSS {hwm/1024:.1f} MiB")
PY
echo "missed-run alerts raised: $missed"
