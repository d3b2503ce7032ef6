# cairn copy: snapshots move between repositories with different keys
# (every blob re-identified and re-encrypted); the copies restore
# byte-exact, a second copy is a no-op, filters work, and a wrong source
# password exits 12.
# Usage: bash tests/e2e/test_copy.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

SRC_REPO=$T/src-repo
DST_REPO=$T/dst-repo
new_repo "$SRC_REPO"
CAIRN_PASSWORD="another password" new_repo "$DST_REPO"
S() { cairn --repo "$SRC_REPO" "$@"; }
SRC_PW=$CAIRN_PASSWORD
D() { CAIRN_PASSWORD="another password" CAIRN_FROM_PASSWORD="$SRC_PW" cairn --repo "$DST_REPO" "$@"; }

step "two services in the source repository"
mkdir -p "$T/a/sub/deeper" "$T/b"
random_file "$T/a/big" 3000000
random_file "$T/a/sub/small" 5000
random_file "$T/a/sub/deeper/mid" 700000
cp "$T/a/big" "$T/b/same-as-big"   # dedups in both repositories
echo "hello" >"$T/b/hello"
ln -s ../a/big "$T/b/link"
: >"$T/b/empty"
expect_exit 0 S --json backup "$T/a" --service a
snap_a=$(jq -r .snapshot_id <<<"$OUT")
expect_exit 0 S --json backup "$T/b" --service b
snap_b=$(jq -r .snapshot_id <<<"$OUT")

step "wrong or missing source password"
expect_exit 12 env CAIRN_FROM_PASSWORD=wrong "$CAIRN_BIN" --no-progress --repo "$DST_REPO" copy --from-repo "$SRC_REPO"
expect_exit 2 env -u CAIRN_FROM_PASSWORD "$CAIRN_BIN" --no-progress --repo "$DST_REPO" copy --from-repo "$SRC_REPO"
expect_exit 10 D copy --from-repo "$T/nowhere"
assert_eq 0 "$(CAIRN_PASSWORD="another password" snapshot_count "$DST_REPO")" "snapshots after failed copies"

step "copy everything"
expect_exit 0 D --json copy --from-repo "$SRC_REPO"
assert_eq 2 "$(jq '.copied | length' <<<"$OUT")" "copied snapshots"
assert_eq "$(printf '%s\n' "$snap_a" "$snap_b" | sort | tr '\n' ' ')" \
  "$(jq -r '.copied[].source' <<<"$OUT" | sort | tr '\n' ' ')" "copied sources"
expect_exit 0 D --json snapshots
assert_eq "$(printf '%s\n' "$snap_a" "$snap_b" | sort | tr '\n' ' ')" \
  "$(jq -r '.[].original' <<<"$OUT" | sort | tr '\n' ' ')" "originals in the destination"
expect_exit 0 D check --read-data

step "the copies restore byte-exact"
expect_exit 0 D restore latest --service a --target "$T/out-a" --verify
assert_same_tree "$T/a" "$T/out-a$T/a"
expect_exit 0 D restore latest --service b --target "$T/out-b" --verify
assert_same_tree "$T/b" "$T/out-b$T/b"

step "a second copy is a no-op"
fp=$(repo_fingerprint "$DST_REPO")
expect_exit 0 D --json copy --from-repo "$SRC_REPO"
assert_eq 0 "$(jq '.copied | length' <<<"$OUT")" "copied on the second run"
assert_eq 2 "$(jq '.skipped | length' <<<"$OUT")" "skipped on the second run"
assert_eq "$fp" "$(repo_fingerprint "$DST_REPO")" "destination after a no-op copy"

step "filters and a password file; a copy of a copy keeps the original id"
THIRD=$T/third
new_repo "$THIRD"
echo "another password" >"$T/pw"
expect_exit 0 cairn --repo "$THIRD" --json copy --from-repo "$DST_REPO" --from-password-file "$T/pw" --service b
assert_eq 1 "$(jq '.copied | length' <<<"$OUT")" "copied with --service b"
assert_eq "$snap_b" "$(cairn --repo "$THIRD" --json snapshots | jq -r '.[0].original')" "original of a copy of a copy"
# The source snapshot named directly is recognised as already copied.
expect_exit 0 cairn --repo "$THIRD" --json copy --from-repo "$SRC_REPO" --from-password-file <(echo "$SRC_PW") "${snap_b:0:8}"
assert_eq 0 "$(jq '.copied | length' <<<"$OUT")" "a copy of the same original"
expect_exit 2 D copy --from-repo "$SRC_REPO" "${snap_a:0:8}" --service a
echo "PASS test_copy"
