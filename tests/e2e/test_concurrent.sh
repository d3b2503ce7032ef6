# Several backups into one repository at the same time (shared locks), with
# check running alongside: no errors, dedup across them, every snapshot
# restores byte-exact.
# Usage: bash tests/e2e/test_concurrent.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }

step "three sources sharing half of their data"
random_file "$T/shared" 6000000
for s in a b c; do
  mkdir -p "$T/$s"
  cp "$T/shared" "$T/$s/shared"
  for i in 1 2 3 4; do random_file "$T/$s/own$i" 1500000; done
done

step "three rounds of three concurrent backups, check in a loop"
for round in 1 2 3; do
  pids=()
  for s in a b c; do
    echo "round $round" >"$T/$s/round"
    "$CAIRN_BIN" --no-progress --quiet --repo "$REPO" backup "$T/$s" --service "$s" &
    pids+=($!)
  done
  (for _ in 1 2 3; do "$CAIRN_BIN" --no-progress --quiet --repo "$REPO" check || exit 1; done) &
  checker=$!
  for p in "${pids[@]}"; do wait "$p" || fail "a concurrent backup failed in round $round"; done
  wait "$checker" || fail "check failed while backups ran in round $round"
done
assert_eq 9 "$(snapshot_count "$REPO")" "snapshots after three rounds"
expect_exit 0 R check --read-data

step "every snapshot restores byte-exact"
for s in a b c; do
  expect_exit 0 R restore latest --service "$s" --target "$T/out-$s" --verify
  assert_same_content "$T/$s" "$T/out-$s$T/$s"
done

step "dedup across concurrent writers"
expect_exit 0 R --json stats
raw=$(jq .raw_data <<<"$OUT")
# 3 x 6 MB shared + 12 x 1.5 MB own = 36 MB restore size per round; unique data ~24 MB.
((raw < 30000000)) || fail "the shared file was stored more than once ($raw bytes of unique data)"
echo "PASS test_concurrent"
