# wal-push killed with SIGKILL at random points (while reading, storing the
# pack, the index or the entry): the archive stays valid, the retry that
# PostgreSQL makes succeeds, every segment fetches byte-exact, check passes
# and prune cleans up what the killed pushes left.
# Usage: bash tests/e2e/test_wal_kill.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
cairn --repo "$REPO" -q key add --new-key-file "$T/key"
W=$T/pg_wal
mkdir -p "$W"
seg() { printf '0000000100000000000000%02X' "$1"; }
push() { "$CAIRN_BIN" --no-progress --key-file "$T/key" --repo "$REPO" wal-push --service db "$W/$1"; }
# push in the background with $! = the cairn process itself (a function run
# with & is a subshell: killing its PID would leave cairn running).
push_bg() { (exec "$CAIRN_BIN" --no-progress --key-file "$T/key" --repo "$REPO" wal-push --service db "$W/$1") >/dev/null 2>&1 & }
# 16 MiB like a real segment: half random (slow to compress), half text.
make_segment() {
  { head -c $((8 << 20)) /dev/urandom; head -c $((8 << 20)) /dev/zero | tr '\0' "$(($1 % 10))"; } >"$W/$(seg "$1")"
}

N=12
step "$N segments, each push killed after a random delay, then retried"
killed=0
for i in $(seq 1 $N); do
  make_segment "$i"
  push_bg "$(seg "$i")"
  pid=$!
  sleep "$(printf '0.%03d' $((RANDOM % 250)))"
  kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
  wait "$pid" 2>/dev/null || true
  expect_exit 0 push "$(seg "$i")"
done
echo "killed $killed of $N pushes before they finished"

step "a killed retry of an archived segment changes nothing"
push_bg "$(seg 3)"
pid=$!
sleep 0.02
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
expect_exit 0 push "$(seg 3)"

step "every segment fetches byte-exact; the archive is continuous"
for i in $(seq 1 $N); do
  expect_exit 0 cairn --key-file "$T/key" --repo "$REPO" wal-get --service db "$(seg "$i")" "$T/got"
  assert_file_same "$W/$(seg "$i")" "$T/got"
done
expect_exit 0 cairn --key-file "$T/key" --repo "$REPO" --json pg check --service db
assert_eq $N "$(jq -r .segments <<<"$OUT")" "archived segments"
assert_eq true "$(jq -r .ok <<<"$OUT")" "continuous archive"

step "check passes (leftovers of killed pushes are warnings at most); prune removes them"
rc=0
cairn --key-file "$T/key" --repo "$REPO" check --read-data >"$T/check.out" 2>&1 || rc=$?
((rc == 0 || rc == 3)) || fail "check after killed pushes: exit $rc: $(tail -n 20 "$T/check.out")"
assert_contains "$(cat "$T/check.out")" "no errors"
expect_exit 0 cairn --key-file "$T/key" --repo "$REPO" unlock
expect_exit 0 cairn --key-file "$T/key" --repo "$REPO" prune --exclusive
expect_exit 0 cairn --key-file "$T/key" --repo "$REPO" check --read-data
for i in 1 $N; do
  expect_exit 0 cairn --key-file "$T/key" --repo "$REPO" wal-get --service db "$(seg "$i")" "$T/got"
  assert_file_same "$W/$(seg "$i")" "$T/got"
done
echo "PASS test_wal_kill"
