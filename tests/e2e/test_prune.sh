# prune deletes what no snapshot references, repacks mostly-unused packs,
# and survives kill -9 at random points (check passes, kept snapshots restore
# byte-exact, a rerun finishes the work).
# Usage: bash tests/e2e/test_prune.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }
SRC=$T/src
mkdir -p "$SRC"
size() { du -sb "$REPO/data" | cut -f1; }

# Generation g rewrites files g*10 .. g*10+29 (overlapping sets, so packs end
# up partly used once old snapshots are forgotten).
generation() {
  local g=$1 i
  for i in $(seq $((g * 10)) $((g * 10 + 29))); do random_file "$SRC/f$((i % 60))" 700000; done
  R --quiet backup "$SRC" --force || fail "backup of generation $g failed"
}

step "six generations of changing data"
for g in 0 1 2 3 4 5; do generation "$g"; done
cp -a "$SRC" "$T/expected"
before=$(size)

step "prune without forget frees nothing"
expect_exit 0 R --json prune
assert_eq 0 "$(jq .packs_deleted <<<"$OUT")" "packs deleted while every snapshot is kept"

step "forget all but the newest; dry run, then prune"
expect_exit 0 R forget --keep-last 1
fp=$(repo_fingerprint "$REPO")
expect_exit 0 R --json prune --dry-run
[[ $(jq .bytes_freed <<<"$OUT") -gt 0 ]] || fail "a dry run found nothing to free"
assert_eq "$fp" "$(repo_fingerprint "$REPO")" "repository after prune --dry-run"
expect_exit 2 R prune --max-unused 120%
expect_exit 0 R --json prune
after=$(size)
echo "data before $before, after $after bytes"
((after < before * 6 / 10)) || fail "prune freed too little ($before -> $after)"
expect_exit 0 R check --read-data
expect_exit 0 R restore latest --target "$T/out" --verify
assert_same_content "$T/expected" "$T/out$SRC"
rm_tree "$T/out"

step "prune killed at random points"
for g in 6 7 8 9; do generation "$g"; done
cp -a "$SRC" "$T/expected2"
rm_tree "$T/expected"
expect_exit 0 R forget --keep-last 1
seed=${CAIRN_E2E_SEED:-$RANDOM}
echo "kill delays from seed $seed"
RANDOM=$seed
for round in $(seq 1 10); do
  delay=$(printf '0.%03d' $((RANDOM % 400)))
  "$CAIRN_BIN" --no-progress --quiet --repo "$REPO" prune --max-unused 0% >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  expect_exit 0 R check
  expect_exit 0 R restore latest --target "$T/out" --verify
  assert_same_content "$T/expected2" "$T/out$SRC"
  rm_tree "$T/out"
  echo "round $round: killed after ${delay}s, check and restore ok"
done
expect_exit 0 R --json prune --max-unused 0%
expect_exit 0 R --json prune --max-unused 0%
assert_eq 0 "$(jq '.packs_deleted + .packs_repacked + .packs_unindexed' <<<"$OUT")" "work left after a complete prune"
expect_exit 0 R check --read-data
assert_eq "" "$(grep -i warning <<<"$ERR" || true)" "check warnings after a complete prune"

step "forget --prune in one go"
generation 10
expect_exit 0 R forget --keep-last 1 --prune
expect_exit 0 R check --read-data
echo "PASS test_prune"
