# prune deletes what no snapshot references (two-phase: a run marks, the
# next one deletes; --exclusive and forget --prune: at once), repacks
# mostly-unused packs, and survives SIGKILL at 25 points across the mark and
# sweep phases and the exclusive mode (check passes, kept snapshots restore
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
  for i in $(seq $((g * 10)) $((g * 10 + 29))); do random_file "$SRC/f$((i % 60))" 400000; done
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
expect_exit 2 R prune --max-repack-size lots
# --max-unused 0% repacks every partly used pack; a copy budget of one byte
# repacks none, and 100% never repacks.
expect_exit 0 R --json prune --dry-run --max-unused 0%
all_repacks=$(jq .packs_repacked <<<"$OUT")
expect_exit 0 R --json prune --dry-run --max-unused 0% --max-repack-size 1
assert_eq 0 "$(jq .packs_repacked <<<"$OUT")" "packs repacked within a 1-byte copy budget"
assert_eq 0 "$(jq .bytes_repacked <<<"$OUT")" "bytes repacked within a 1-byte copy budget"
expect_exit 0 R --json prune --dry-run --max-unused 100%
assert_eq 0 "$(jq .packs_repacked <<<"$OUT")" "packs repacked with --max-unused 100%"
echo "    packs repacked at --max-unused 0%: $all_repacks"
expect_exit 0 R --json prune
assert_eq true "$(jq .marked <<<"$OUT")" "first prune marks"
(($(size) >= before)) || fail "the marking run deleted data ($before -> $(size))"
expect_exit 0 R check
expect_exit 0 R --json prune
assert_eq true "$(jq .swept <<<"$OUT")" "second prune sweeps"
assert_eq "[]" "$(jq -c .waiting_for <<<"$OUT")" "holders waited for with no backup running"
after=$(size)
echo "data before $before, after $after bytes"
((after < before * 6 / 10)) || fail "prune freed too little ($before -> $after)"
expect_exit 0 R check --read-data
expect_exit 0 R restore latest --target "$T/out" --verify
assert_same_content "$T/expected" "$T/out$SRC"
rm_tree "$T/out"

# verify_after_kill WHAT: the repository passes check and the kept snapshot
# restores byte-exact.
verify_after_kill() {
  expect_exit 0 R check
  expect_exit 0 R restore latest --target "$T/out" --verify
  assert_same_content "$T/expected2" "$T/out$SRC"
  rm_tree "$T/out"
  echo "$1: check and restore ok"
}

# prune_killed_after N ARGS...: prune that SIGKILLs itself after its Nth
# change to the repository (or finishes first).
prune_killed_after() {
  local n=$1 rc=0
  shift
  CAIRN_TEST_PRUNE_KILL_AFTER=$n "$CAIRN_BIN" --no-progress --quiet --repo "$REPO" prune "$@" \
    >/dev/null 2>"$T/prune.err" || rc=$?
  ((rc == 0 || rc == 137)) || fail "prune (kill after $n) failed with exit $rc: $(cat "$T/prune.err")"
  echo "$rc"
}

# finish_prune: prune until a run has nothing left to mark or sweep.
finish_prune() {
  local i
  for i in 1 2 3 4 5; do
    expect_exit 0 R --json prune --max-unused 0%
    [[ $(jq '.marked or .swept' <<<"$OUT") == false ]] && return 0
  done
  fail "prune still finds work after 5 runs: $OUT"
}

# kill_round BASE N ARGS...: from a copy of the repository state BASE, prune
# is killed after its Nth change; then the repository must pass check and
# restore the kept snapshot, and a rerun must finish the work.
points=0
kill_round() {
  local base=$1 n=$2 rc
  shift 2
  rm_tree "$REPO"
  cp -a "$base" "$REPO"
  rc=$(prune_killed_after "$n" "$@")
  points=$((points + 1))
  verify_after_kill "prune $* killed after change $n (exit $rc)"
  finish_prune
  expect_exit 0 R check
  assert_eq "" "$(grep -i warning <<<"$ERR" || true)" "check warnings after the rerun"
}

step "kill points: mark phase, sweep phase, exclusive mode"
for g in 6 7 8 9; do generation "$g"; done
cp -a "$SRC" "$T/expected2"
rm_tree "$T/expected"
expect_exit 0 R forget --keep-last 1
cp -a "$REPO" "$T/base-mark"         # prune will mark
expect_exit 0 R prune --max-unused 0%
cp -a "$REPO" "$T/base-sweep"        # prune will sweep, then mark
for k in 1 2 3 4 5 6; do kill_round "$T/base-mark" "$k" --max-unused 0%; done
for k in 1 2 3 4 5 6 7 8 10 12 14 16 18 20 22; do kill_round "$T/base-sweep" "$k" --max-unused 0%; done
for k in 1 2 3 5 8; do kill_round "$T/base-mark" "$k" --exclusive --max-unused 0%; done

step "prune killed at random moments"
generation 10
rm_tree "$T/expected2"
cp -a "$SRC" "$T/expected2"
expect_exit 0 R forget --keep-last 1
seed=${CAIRN_E2E_SEED:-$RANDOM}
echo "kill delays from seed $seed"
RANDOM=$seed
for round in 1 2 3; do
  delay=$(printf '0.%03d' $((RANDOM % 300)))
  "$CAIRN_BIN" --no-progress --quiet --repo "$REPO" prune --max-unused 0% >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  points=$((points + 1))
  verify_after_kill "random round $round, killed after ${delay}s"
done
echo "$points kill points"
((points >= 20)) || fail "only $points kill points"
finish_prune
expect_exit 0 R check --read-data
assert_eq "" "$(grep -i warning <<<"$ERR" || true)" "check warnings after a complete prune"
rm_tree "$T/base-mark" "$T/base-sweep"

step "prune --exclusive deletes at once"
generation 11
expect_exit 0 R forget --keep-last 1
before=$(size)
expect_exit 0 R --json prune --exclusive
assert_eq exclusive "$(jq -r .mode <<<"$OUT")" "mode"
((before > $(size))) || fail "prune --exclusive deleted nothing"
expect_exit 0 R check --read-data

step "forget --prune in one go"
generation 10
expect_exit 0 R forget --keep-last 1 --prune
expect_exit 0 R check --read-data
echo "PASS test_prune"
