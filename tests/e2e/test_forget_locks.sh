# forget with GFS policies (dry run changes nothing; ids; grouping) and
# repository locks (a live exclusive lock blocks with exit 11, stale locks
# do not, unlock removes them).
# Usage: bash tests/e2e/test_forget_locks.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }
mkdir -p "$T/src"

step "ten daily snapshots of one service, two of another"
for d in 01 02 03 04 05 06 07 08 09 10; do
  echo "day $d" >"$T/src/f"
  R --quiet backup "$T/src" --service web --time "2026-11-${d}T03:00:00Z" || fail "backup $d failed"
done
for d in 01 02; do
  R --quiet backup "$T/src" --service db --time "2026-11-${d}T04:00:00Z" || fail "db backup $d failed"
done
assert_eq 12 "$(snapshot_count "$REPO")" "snapshots before forget"

step "usage errors"
expect_exit 2 R forget                       # no policy, no ids
expect_exit 2 R forget --keep-daily -1
expect_exit 2 R forget --keep-last 1 deadbeef  # ids and policy together
expect_exit 2 R forget --keep-last 1 --group-by hots

step "dry run changes nothing"
before=$(repo_fingerprint "$REPO")
expect_exit 0 R --json forget --keep-daily 3 --dry-run
assert_eq 2 "$(jq '.groups | length' <<<"$OUT")" "groups (web and db)"
assert_eq 7 "$(jq '[.groups[].remove | length] | add' <<<"$OUT")" "snapshots a dry run would remove"
assert_eq "$before" "$(repo_fingerprint "$REPO")" "repository after a dry run"

step "forget --keep-daily 3 --keep-weekly 3 --service web"
expect_exit 0 R --json forget --keep-daily 3 --keep-weekly 3 --service web
# daily: Nov 10, 9, 8. ISO weeks (Mon-Sun): W46 newest = Nov 10, W45 = Nov 8
# (its Sunday), W44 = Nov 1 (its Sunday). Kept: 1, 8, 9, 10.
assert_eq 6 "$(jq '.removed | length' <<<"$OUT")" "removed web snapshots"
expect_exit 0 R --json snapshots --service web
assert_eq '["2026-11-01","2026-11-08","2026-11-09","2026-11-10"]' \
  "$(jq -c '[.[].time[0:10]]' <<<"$OUT")" "kept web snapshot days"
expect_exit 0 R check
expect_exit 0 R restore latest --service web --target "$T/out" --verify
assert_eq "day 10" "$(cat "$T/out$T/src/f")" "newest web snapshot content"

step "forget by id"
id=$(R --json snapshots --service db | jq -r '.[0].id')
expect_exit 0 R forget "${id:0:8}"
assert_eq 5 "$(snapshot_count "$REPO")" "snapshots after forgetting one by id (4 web + 1 db)"
expect_exit 1 R forget 00000000

step "a live exclusive lock blocks backups (exit 11); a dead one does not"
# Lock files are encrypted, so take a real one: a backup reading a FIFO that
# stays open holds a shared lock; an exclusive forget must then refuse.
mkfifo "$T/fifo"
R --quiet backup --stdin --stdin-filename slow <"$T/fifo" &
backup_pid=$!
exec 7>"$T/fifo"  # keep the writer open so the backup waits
for _ in $(seq 50); do
  [[ -n $(ls "$REPO/locks") ]] && break
  sleep 0.1
done
[[ -n $(ls "$REPO/locks") ]] || fail "the running backup holds no lock"
expect_exit 11 R forget --keep-last 1
assert_contains "$ERR" "locked"
expect_exit 0 R unlock          # the backup is alive: its lock is not stale
[[ -n $(ls "$REPO/locks") ]] || fail "unlock removed a live lock"
echo "data" >&7
exec 7>&-
wait "$backup_pid" || fail "the stdin backup failed"
[[ -z $(ls "$REPO/locks") ]] || fail "the finished backup left its lock behind"

step "a lock left by a killed process is stale"
mkfifo "$T/fifo2"
# The binary itself, not the R function: $! must be cairn's own pid.
"$CAIRN_BIN" --no-progress --quiet --repo "$REPO" backup --stdin --stdin-filename slow2 <"$T/fifo2" &
backup_pid=$!
exec 8>"$T/fifo2"
for _ in $(seq 50); do
  [[ -n $(ls "$REPO/locks") ]] && break
  sleep 0.1
done
kill -9 "$backup_pid"
wait "$backup_pid" 2>/dev/null || true
exec 8>&-
[[ -n $(ls "$REPO/locks") ]] || fail "the killed backup left no lock (test setup)"
expect_exit 0 R forget --keep-last 10   # stale lock does not block
expect_exit 0 R --json unlock --list
assert_eq true "$(jq -r '.[0].stale' <<<"$OUT")" "the dead process's lock is stale"
expect_exit 0 R unlock
[[ -z $(ls "$REPO/locks") ]] || fail "unlock left the stale lock"
expect_exit 0 R check
echo "PASS test_forget_locks"
