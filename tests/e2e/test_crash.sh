# kill -9 during backups: the repository stays consistent (check passes,
# older snapshots restore byte-exact) and a later backup completes.
# Usage: bash tests/e2e/test_crash.sh /path/to/cairn [rounds]
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
ROUNDS=${2:-8}

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }

step "first snapshot of a ~5 MiB tree"
SMALL=$T/small
mkdir -p "$SMALL/d1" "$SMALL/d2"
for i in 1 2 3 4; do random_file "$SMALL/d1/r$i" $((1024 * 1024)); done
for i in $(seq 1 50); do random_file "$SMALL/d2/s$i" $((RANDOM * 2)); done
seq 1 100000 >"$SMALL/text"
ln -s d1/r1 "$SMALL/link"
expect_exit 0 R --json backup "$SMALL"
snap1=$(jq -r .snapshot_id "$OUT_FILE")
expect_exit 0 R restore "$snap1:$SMALL" --target "$T/restore1"
assert_same_tree "$SMALL" "$T/restore1"

step "~200 MiB random tree"
BIG=$T/big
mkdir -p "$BIG/a" "$BIG/b"
for i in $(seq 1 20); do random_file "$BIG/a/f$i" $((5 * 1024 * 1024)); done
for i in $(seq 1 10); do random_file "$BIG/b/g$i" $((10 * 1024 * 1024 - i)); done
for i in $(seq 1 200); do random_file "$BIG/b/small$i" $((i * 100)); done

completed=0
for round in $(seq 1 "$ROUNDS"); do
  delay=$(awk -v seed="$RANDOM$round" 'BEGIN { srand(seed); printf "%.2f", 0.05 + rand() * 1.45 }')
  step "round $round/$ROUNDS: kill -9 after ${delay}s"
  # --force: read everything each round, even if an earlier round completed.
  "$CAIRN_BIN" --no-progress --repo "$REPO" backup --force "$BIG" >"$T/bg.out" 2>"$T/bg.err" &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null || true
  rc=0
  { wait "$pid"; } 2>/dev/null || rc=$?  # (no "Killed" job message)
  if ((rc == 0)); then
    completed=$((completed + 1))
    echo "(backup finished before the kill)"
  elif ((rc != 137)); then
    fail "backup killed in round $round exited $rc, not 137 (SIGKILL): $(cat "$T/bg.err")"
  fi
  expect_exit 0 R check
  expect_exit 0 R --json snapshots
  jq -e --arg s "$snap1" 'map(.id) | index($s) != null' "$OUT_FILE" >/dev/null ||
    fail "first snapshot gone after round $round: $OUT"
  rm_tree "$T/restore1"
  expect_exit 0 R restore "$snap1:$SMALL" --target "$T/restore1"
  assert_same_tree "$SMALL" "$T/restore1"
done
echo "$completed of $ROUNDS backups finished before their kill"

step "a normal backup of the big tree"
expect_exit 0 R --json backup "$BIG"
snap_big=$(jq -r .snapshot_id "$OUT_FILE")
expect_exit 0 R restore "$snap_big:$BIG" --target "$T/restore_big"
assert_same_tree "$BIG" "$T/restore_big"
rm_tree "$T/restore_big"
expect_exit 0 R check --read-data
rm_tree "$T/restore1"
expect_exit 0 R restore "$snap1:$SMALL" --target "$T/restore1" --verify
assert_same_tree "$SMALL" "$T/restore1"
