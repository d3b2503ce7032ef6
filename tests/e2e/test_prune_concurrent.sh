# Two-phase prune while backups run: two backup loops (changing data that
# keeps coming back to earlier contents, so backups dedup against data prune
# has marked) run while prune marks and sweeps several times. Every backup
# succeeds; afterwards check --read-data passes and every remaining snapshot
# restores byte-exact to the copy of its source taken when it was made.
# Usage: bash tests/e2e/test_prune_concurrent.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }

# A pool of file versions: each backup picks versions at random, so a later
# backup often stores content only a forgotten snapshot had.
mkdir -p "$T/pool" "$T/copies"
for v in 0 1 2 3 4 5; do random_file "$T/pool/v$v" 1500000; done

# backup_loop NAME: backs up until $T/stop exists; pauses while $T/pause
# exists (acknowledged by $T/idle-NAME) so forget can take its exclusive
# lock. Loop "a" backs up a folder; loop "b" backs up a stream that pauses
# in the middle, so it is still running (and deduplicating against data
# loaded before prune marked it) when prune marks and sweeps. Each
# snapshot's source is kept in $T/copies/<id>.
backup_loop() {
  local name=$1 src=$T/src-$1 n=0 i id x y z
  mkdir -p "$src"
  RANDOM=$BASHPID
  while [[ ! -e $T/stop ]]; do
    if [[ -e $T/pause ]]; then
      touch "$T/idle-$name"
      sleep 0.05
      continue
    fi
    rm -f "$T/idle-$name"
    n=$((n + 1))
    if [[ $name == a ]]; then
      for i in 0 1 2 3 4 5; do cp "$T/pool/v$((RANDOM % 6))" "$src/f$i"; done
      echo "$name $n" >"$src/counter"
      set -- backup "$src" --service a
    else
      x=$T/pool/v$((RANDOM % 6)) y=$T/pool/v$((RANDOM % 6)) z=$T/pool/v$((RANDOM % 6))
      cat "$x" "$y" "$z" >"$src/data"
      set -- backup --service b --stdin-from-command --stdin-filename data -- \
        sh -c "cat '$x'; sleep 0.6; cat '$y'; sleep 0.6; cat '$z'"
    fi
    if ! "$CAIRN_BIN" --no-progress --json --repo "$REPO" "$@" >"$T/out-$name" 2>"$T/err-$name"; then
      echo "backup $name #$n failed: $(cat "$T/err-$name")" >"$T/failed-$name"
      return 1
    fi
    id=$(jq -r .snapshot_id <"$T/out-$name")
    cp -a "$src" "$T/copies/$id"
  done
  touch "$T/idle-$name"
}

forget_paused() {
  touch "$T/pause"
  # Acknowledgements from an earlier pause are stale: wait for fresh ones.
  rm -f "$T/idle-a" "$T/idle-b" "$T/idle-check"
  local tries=0
  until [[ -e $T/idle-a && -e $T/idle-b && -e $T/idle-check ]]; do
    sleep 0.05
    tries=$((tries + 1))
    ((tries < 1200)) || fail "backup loops did not pause"
  done
  expect_exit 0 R forget --keep-last 2 --group-by service
  rm -f "$T/pause"
}

step "two backup loops start"
backup_loop a &
pid_a=$!
backup_loop b &
pid_b=$!
on_exit "touch '$T/stop'; kill $pid_a $pid_b 2>/dev/null; wait $pid_a $pid_b 2>/dev/null"
waited_for=0
until [[ $(snapshot_count "$REPO") -ge 4 ]]; do
  [[ -e $T/failed-a || -e $T/failed-b ]] && fail "a backup failed: $(cat "$T"/failed-* 2>/dev/null)"
  sleep 0.2
  waited_for=$((waited_for + 1))
  ((waited_for < 600)) || fail "no snapshots after 2 minutes"
done

# check_loop: check runs beside backups and prunes and must never report
# damage (a pack swept meanwhile was marked: a warning, not an error).
check_loop() {
  local n=0
  while [[ ! -e $T/stop ]]; do
    if [[ -e $T/pause ]]; then
      touch "$T/idle-check"
    else
      rm -f "$T/idle-check"
      n=$((n + 1))
      if ! "$CAIRN_BIN" --no-progress --quiet --repo "$REPO" check >"$T/check.out" 2>"$T/check.err"; then
        echo "check #$n failed: $(cat "$T/check.out" "$T/check.err")" >"$T/failed-check"
        return 1
      fi
    fi
    sleep 0.3
  done
  touch "$T/idle-check"
}

step "forget, then prune twice, six times over, while backups and checks run"
check_loop &
pid_check=$!
on_exit "kill $pid_check 2>/dev/null"
marks=0 sweeps=0 rescued=0 waited=0
prune_now() {
  expect_exit 0 R --json prune --max-unused 0%
  [[ $(jq .marked <<<"$OUT") == true ]] && marks=$((marks + 1))
  [[ $(jq .swept <<<"$OUT") == true ]] && sweeps=$((sweeps + 1))
  [[ $(jq '.waiting_for | length' <<<"$OUT") -gt 0 ]] && waited=$((waited + 1))
  rescued=$((rescued + $(jq .packs_rescued <<<"$OUT")))
  echo "  prune: marked=$(jq .marked <<<"$OUT") swept=$(jq .swept <<<"$OUT")" \
    "packs swept=$(jq .packs_swept <<<"$OUT") rescued=$(jq .packs_rescued <<<"$OUT")" \
    "waiting=$(jq '.waiting_for | length' <<<"$OUT")"
  [[ -e $T/failed-a || -e $T/failed-b || -e $T/failed-check ]] &&
    fail "a backup or check failed while prune ran: $(cat "$T"/failed-* 2>/dev/null)"
  return 0
}
for round in 1 2 3 4 5 6; do
  echo "round $round"
  forget_paused
  sleep 0.4  # both loops mid-backup when prune marks
  prune_now
  sleep 0.4
  prune_now
done
touch "$T/stop"
wait "$pid_a" || fail "backup loop a failed: $(cat "$T/failed-a" 2>/dev/null)"
wait "$pid_b" || fail "backup loop b failed: $(cat "$T/failed-b" 2>/dev/null)"
wait "$pid_check" || fail "check failed while prune ran: $(cat "$T/failed-check" 2>/dev/null)"
echo "marks $marks, sweeps $sweeps, prunes that waited $waited, packs rescued $rescued"
((marks >= 2)) || fail "prune marked only $marks times"
((sweeps >= 1)) || fail "prune never swept"

step "a final sweep with no backup running"
expect_exit 0 R --json prune
expect_exit 0 R --json prune
assert_eq "[]" "$(jq -c .waiting_for <<<"$OUT")" "holders waited for with no backup running"
expect_exit 0 R check --read-data

step "every snapshot restores byte-exact"
n=0
for id in $(R --json snapshots | jq -r '.[].id'); do
  [[ -d $T/copies/$id ]] || fail "no source copy for snapshot $id"
  svc=$(R --json snapshots | jq -r --arg id "$id" '.[] | select(.id == $id) | .service')
  expect_exit 0 R restore "$id" --target "$T/out" --verify
  if [[ $svc == a ]]; then
    assert_same_content "$T/copies/$id" "$T/out$T/src-a"
  else
    assert_file_same "$T/copies/$id/data" "$T/out/data"
  fi
  rm_tree "$T/out"
  n=$((n + 1))
done
echo "$n snapshots restored"
echo "PASS test_prune_concurrent"
