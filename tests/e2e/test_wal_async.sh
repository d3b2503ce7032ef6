# wal-push --async: a background worker pushes every segment PostgreSQL has
# marked ready, in batches; each archive_command call succeeds only once its
# own file is durable, fails with the worker's message when the repository is
# unreachable (nothing lost: the next call pushes it), and identical retries
# are fine. PostgreSQL is simulated by a pg_wal folder with archive_status.
# Usage: bash tests/e2e/test_wal_async.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
cairn --repo "$REPO" -q key add --new-key-file "$T/key"
W=$T/pg_wal
mkdir -p "$W/archive_status"
seg() { printf '0000000100000000000000%02X' "$1"; }
ready() {  # PostgreSQL finished segment N
  random_file "$W/$(seg "$1")" $((1024 * 1024 + $1 * 4096))
  touch "$W/archive_status/$(seg "$1").ready"
}
for i in $(seq 1 8); do ready "$i"; done
# archive_command as PostgreSQL runs it: one call per file, in order, and the
# .ready marker becomes .done only after success.
archive() {
  cairn --key-file "$T/key" --repo "$REPO" wal-push --service db --async --spool-dir "$T/spool" \
    --async-timeout 20 --batch 5 "$W/$1" || return $?
  mv "$W/archive_status/$1.ready" "$W/archive_status/$1.done"
}

step "every file archived through the worker, in batches"
for i in $(seq 1 8); do archive "$(seg "$i")" || fail "archiving $(seg "$i")"; done
for i in 1 5 8; do
  expect_exit 0 cairn --key-file "$T/key" --repo "$REPO" wal-get --service db "$(seg "$i")" "$T/got"
  assert_file_same "$W/$(seg "$i")" "$T/got"
done
[ "$(find "$REPO/index" -type f | wc -l)" -lt 8 ] || fail "one index file per segment: batches were not used"

step "repository unreachable: the call fails with the worker's message; later it goes through"
sleep 1.5  # let the worker of the first batches finish
mv "$REPO" "$REPO.away"
ready 9
expect_exit 1 archive "$(seg 9)"
assert_contains "$ERR" "$(seg 9)"
mv "$REPO.away" "$REPO"
for i in $(seq 10 12); do ready "$i"; done
for i in $(seq 9 12); do archive "$(seg "$i")" || fail "archiving $(seg "$i") after the outage"; done
expect_exit 0 cairn --key-file "$T/key" --repo "$REPO" --json pg check --service db
assert_eq 12 "$(jq -r .segments <<<"$OUT")" "archived segments"
assert_eq true "$(jq -r .ok <<<"$OUT")" "continuous archive"

step "a different file under an archived name is refused through the worker too"
random_file "$W/$(seg 3)" 4096
touch "$W/archive_status/$(seg 3).ready"
expect_exit 1 archive "$(seg 3)"
assert_contains "$ERR" "different content"
rm "$W/archive_status/$(seg 3).ready"
expect_exit 0 cairn --repo "$REPO" check --read-data
sleep 1.5  # the worker exits after 1 s idle
pgrep -f "spool-dir $T/spool" >/dev/null && fail "the worker is still running"
echo "PASS test_wal_async"
