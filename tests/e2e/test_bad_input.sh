# Wrong passwords, missing repositories, unreadable sources, damaged packs,
# indexes, snapshots and keys, hostile restore targets and a full disk.
# Usage: bash tests/e2e/test_bad_input.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

# Names of the packs of a repository, sorted.
list_packs() { (cd -- "$1/data" && find . -type f ! -name '.*' -printf '%f\n' | sort); }

# Exit status of a crashed process is 128+signal; a handled error is small.
assert_not_crashed() {  # assert_not_crashed RC what
  (($1 != 0 && $1 < 126)) || fail "$2: expected a handled error exit code, got $1"
}

REPO=$T/repo
SRC=$T/src
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }

step "base repository: snapshot A, then snapshot B adding one file in a new pack"
mkdir -p "$SRC/sub"
random_file "$SRC/a" $((300 * 1024))
echo "plain text" >"$SRC/b"
random_file "$SRC/sub/c" $((1024 * 1024))
expect_exit 0 R --json backup "$SRC"
snapA=$(jq -r .snapshot_id "$OUT_FILE")
cp -a "$SRC" "$T/stateA"
packs_before=$(list_packs "$REPO")
random_file "$SRC/new" $((2 * 1024 * 1024))
expect_exit 0 R --json backup "$SRC"
snapB=$(jq -r .snapshot_id "$OUT_FILE")
new_packs=$(comm -13 <(echo "$packs_before") <(list_packs "$REPO"))
PNEW=
for p in $new_packs; do
  R --json cat pack "$p" >"$T/pack.json" || fail "cat pack $p failed"
  if jq -e 'any(.blobs[]; .type == "data")' "$T/pack.json" >/dev/null; then
    [[ -z $PNEW ]] || fail "snapshot B wrote more than one data pack: $new_packs"
    PNEW=$p
  fi
done
[[ -n $PNEW ]] || fail "no new data pack after adding a file; new packs: $new_packs"
PNEW_FILE=$REPO/data/${PNEW:0:2}/$PNEW
[[ -f $PNEW_FILE ]] || fail "pack $PNEW is not at $PNEW_FILE"
expect_exit 0 R check --read-data
cp -a "$REPO" "$T/pristine"
fresh_copy() { rm -rf "$1" && cp -a "$T/pristine" "$1"; }

step "wrong password: exit 12, repository untouched"
repo_fingerprint "$REPO" >"$T/fp.before"
for cmd in "snapshots" "backup $SRC" "restore latest --target $T/wrongpw" "check --read-data" "ls latest" \
  "dump latest:$SRC/b" "stats" "diff $snapA $snapB" "cat config"; do
  # shellcheck disable=SC2086 # word splitting of $cmd is intended (no spaces in $T)
  CAIRN_PASSWORD="not the password" expect_exit 12 R $cmd
  assert_contains "$ERR" "password" "stderr of '$cmd' with a wrong password"
done
[[ ! -e $T/wrongpw ]] || fail "restore with a wrong password created its target"
repo_fingerprint "$REPO" >"$T/fp.after"
cmp -s "$T/fp.before" "$T/fp.after" ||
  fail "repository changed after wrong-password commands:"$'\n'"$(diff "$T/fp.before" "$T/fp.after")"
# No password at all (stdin is not a terminal) is a usage error, not a hang.
CAIRN_PASSWORD='' expect_exit nonzero R snapshots </dev/null
assert_contains "$ERR" "password" "stderr without a password"

step "missing repository: exit 10"
for cmd in "snapshots" "backup $SRC" "restore latest --target $T/norepo-out" "check" "ls latest" "stats"; do
  # shellcheck disable=SC2086
  expect_exit 10 cairn --repo "$T/no-such-repo" $cmd
done
[[ ! -e $T/no-such-repo ]] || fail "a command on a missing repository created it"
mkdir "$T/empty-dir"
expect_exit 10 cairn --repo "$T/empty-dir" snapshots
expect_exit 2 cairn snapshots  # no --repo, no CAIRN_REPOSITORY

step "init twice: refused, nothing changed"
expect_exit nonzero cairn --repo "$REPO" init --kdf-iterations 1 --kdf-memory 8
assert_contains "$ERR" "exists" "stderr of a second init"
repo_fingerprint "$REPO" >"$T/fp.after"
cmp -s "$T/fp.before" "$T/fp.after" || fail "second init changed the repository"
CAIRN_PASSWORD="another password" expect_exit nonzero cairn --repo "$REPO" init --kdf-iterations 1 --kdf-memory 8
repo_fingerprint "$REPO" >"$T/fp.after"
cmp -s "$T/fp.before" "$T/fp.after" || fail "second init with another password changed the repository"
expect_exit 0 R snapshots

step "unreadable source files: exit 3, snapshot of the rest"
as_user=()
if [[ $(id -u) != 0 ]]; then
  as_user=(env)
elif id nobody >/dev/null 2>&1 && runuser -u nobody -- true 2>/dev/null; then
  as_user=(runuser -u nobody --)
elif id nobody >/dev/null 2>&1 && setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups true 2>/dev/null; then
  as_user=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
fi
chmod 711 "$T"
if ((${#as_user[@]} == 0)); then
  skip "running as root and cannot switch to 'nobody': not testing unreadable files"
elif ! "${as_user[@]}" test -x "$T" -a -x "$CAIRN_BIN"; then
  skip "'nobody' cannot reach $T or $CAIRN_BIN: not testing unreadable files"
else
  NB=$T/nb
  mkdir -p "$NB/src/locked"
  echo ok1 >"$NB/src/ok1"
  random_file "$NB/src/ok2" 100000
  echo secret >"$NB/src/secret"
  echo hidden >"$NB/src/locked/inner"
  odd=$NB/src/$(printf 'odd-\351')  # a name that is not UTF-8, in a --json warning
  echo odd >"$odd"
  [[ $(id -u) == 0 ]] && chown -R nobody "$NB"
  chmod 000 "$NB/src/secret" "$NB/src/locked" "$odd"
  NBR() { (cd / && "${as_user[@]}" "$CAIRN_BIN" --no-progress --repo "$NB/repo" "$@"); }
  NBR --quiet init --kdf-iterations 1 --kdf-memory 8 >/dev/null || fail "init as ${as_user[*]} failed"
  if "${as_user[@]}" cat "$NB/src/secret" >/dev/null 2>&1; then
    skip "chmod 000 does not stop reading here: not testing unreadable files"
  else
    expect_exit 3 NBR backup "$NB/src"
    assert_contains "$ERR" "$NB/src/secret" "backup stderr (unreadable file)"
    assert_contains "$ERR" "$NB/src/locked" "backup stderr (unreadable directory)"
    assert_eq 1 "$(NBR --json snapshots | jq length)" "snapshots after a backup with unreadable files"
    expect_exit 3 NBR --json backup "$NB/src"
    jq -e '.warnings | length >= 3' "$OUT_FILE" >/dev/null || fail "backup --json lacks the warnings: $OUT"
    expect_exit 0 NBR restore latest:"$NB/src" --target "$NB/out"
    assert_file_same "$NB/src/ok1" "$NB/out/ok1"
    assert_file_same "$NB/src/ok2" "$NB/out/ok2"
    [[ ! -e $NB/out/secret ]] || fail "the unreadable file appears in the restore"
    expect_exit 0 NBR check --read-data
  fi
fi
chmod 700 "$T"

step "bit flip in the middle of a pack"
R1=$T/r-flip
fresh_copy "$R1"
flip_byte "$R1/data/${PNEW:0:2}/$PNEW" $(($(stat -c %s "$PNEW_FILE") / 2))
expect_exit 1 cairn --repo "$R1" check --read-data
assert_contains "$OUT" "$PNEW" "check --read-data output (damaged pack id)"
assert_contains "$(grep 'snapshots affected' <<<"$OUT")" "${snapB:0:8}" "affected snapshots line"
assert_not_contains "$(grep 'snapshots affected' <<<"$OUT")" "${snapA:0:8}" "affected snapshots line"
expect_exit 1 cairn --repo "$R1" --json check --read-data
jq -e --arg p "$PNEW" --arg b "$snapB" '.ok == false and .damaged_packs == [$p] and .affected_snapshots == [$b]' \
  "$OUT_FILE" >/dev/null || fail "check --json: expected damaged_packs [$PNEW], affected [$snapB]; got $OUT"
# Restoring the snapshot that needs the damaged pack: error, the damaged file
# is not left behind, the rest is restored.
expect_exit 1 cairn --repo "$R1" restore "$snapB:$SRC" --target "$T/out-flip"
assert_contains "$ERR" "new" "restore stderr (damaged file)"
[[ ! -e $T/out-flip/new ]] || fail "restore left the damaged file 'new' in the target"
assert_same_tree "$T/stateA" "$T/out-flip"
expect_exit nonzero cairn --repo "$R1" dump "$snapB:$SRC/new"
expect_exit 0 cairn --repo "$R1" dump "$snapB:$SRC/a"
cmp -s "$OUT_FILE" "$SRC/a" || fail "dump of an undamaged file from the damaged snapshot differs"
# The older snapshot does not use the damaged pack and restores byte-exact.
expect_exit 0 cairn --repo "$R1" restore "$snapA:$SRC" --target "$T/out-flipA" --verify
assert_same_tree "$T/stateA" "$T/out-flipA"
rm_tree "$T/out-flip" "$T/out-flipA" "$R1"

step "truncated pack"
R2=$T/r-trunc
fresh_copy "$R2"
truncate -s -100 "$R2/data/${PNEW:0:2}/$PNEW"
expect_exit 1 cairn --repo "$R2" check
assert_contains "$OUT" "$PNEW" "check output (truncated pack)"
expect_exit 1 cairn --repo "$R2" --json check --read-data
jq -e --arg p "$PNEW" --arg b "$snapB" '(.damaged_packs | index($p)) != null and .affected_snapshots == [$b]' \
  "$OUT_FILE" >/dev/null || fail "check --read-data --json of a truncated pack: $OUT"
expect_exit 0 cairn --repo "$R2" restore "$snapA:$SRC" --target "$T/out-trunc"
assert_same_tree "$T/stateA" "$T/out-trunc"
rm_tree "$T/out-trunc" "$R2"

step "corrupted index file"
R3=$T/r-index
fresh_copy "$R3"
idx=$(find "$R3/index" -type f ! -name ".*" -printf "%f\n" | head -n 1)
[[ -n $idx ]] || fail "no index file"
flip_byte "$R3/index/$idx" $(($(stat -c %s "$R3/index/$idx") / 2))
expect_exit 1 cairn --repo "$R3" check
assert_contains "$OUT$ERR" "$idx" "check output (corrupted index)"
truncate -s 10 "$R3/index/$idx"
expect_exit 1 cairn --repo "$R3" check
assert_contains "$OUT$ERR" "$idx" "check output (truncated index)"
rm_tree "$R3"

step "corrupted snapshot file"
R4=$T/r-snap
fresh_copy "$R4"
flip_byte "$R4/snapshots/$snapA" $(($(stat -c %s "$R4/snapshots/$snapA") / 2))
expect_exit 3 cairn --repo "$R4" --json snapshots
jq -e --arg b "$snapB" 'map(.id) == [$b]' "$OUT_FILE" >/dev/null || fail "snapshots --json with one damaged: $OUT"
assert_contains "$ERR" "$snapA" "snapshots warning (damaged snapshot file)"
expect_exit 3 cairn --repo "$R4" snapshots
assert_contains "$OUT" "${snapB:0:8}" "snapshots listing with one damaged"
expect_exit 1 cairn --repo "$R4" check
assert_contains "$OUT$ERR" "$snapA" "check output (damaged snapshot file)"
expect_exit 0 cairn --repo "$R4" restore "$snapB:$SRC" --target "$T/out-snap"
assert_same_tree "$SRC" "$T/out-snap"
rm_tree "$T/out-snap" "$R4"

step "damaged key file (the only key)"
R5=$T/r-key
fresh_copy "$R5"
key=$(find "$R5/keys" -type f ! -name ".*" -printf "%f\n")
[[ $(wc -w <<<"$key") == 1 ]] || fail "expected exactly one key file, got: $key"
KEYF=$R5/keys/$key
cp "$KEYF" "$T/key.orig"
for damage in half empty flip-middle flip-last; do
  cp "$T/key.orig" "$KEYF"
  case $damage in
    half) truncate -s $(($(stat -c %s "$KEYF") / 2)) "$KEYF" ;;
    empty) truncate -s 0 "$KEYF" ;;
    flip-middle) flip_byte "$KEYF" $(($(stat -c %s "$KEYF") / 2)) ;;
    flip-last) flip_byte "$KEYF" -2 ;;
  esac
  rc=0
  cairn --repo "$R5" snapshots >"$T/key.out" 2>"$T/key.err" || rc=$?
  assert_not_crashed "$rc" "snapshots with a damaged key file ($damage)"
  [[ -s $T/key.err ]] || fail "no error message with a damaged key file ($damage)"
  grep -qiE 'key|password' "$T/key.err" || fail "unclear error for a damaged key file ($damage): $(cat "$T/key.err")"
done
rm -f "$KEYF"
expect_exit nonzero cairn --repo "$R5" snapshots
assert_contains "$ERR" "key" "stderr without any key file"
rm_tree "$R5"

step "restore never writes through symlinks in the target"
first=${SRC#/}
first=${first%%/*}
mkdir -p "$T/esc" "$T/outside"
ln -s "$T/outside" "$T/esc/$first"
rc=0
R restore "$snapA" --target "$T/esc" >"$T/esc.out" 2>"$T/esc.err" || rc=$?
((rc != 0)) || fail "restore through a symlinked '$first' in the target exited 0"
assert_not_crashed "$rc" "restore through a symlinked directory"
[[ -z $(ls -A "$T/outside") ]] || fail "restore wrote through the symlink: $(find "$T/outside" | head)"
# The same one level down, and a symlinked file in place of a restored file.
mkdir -p "$T/esc2" "$T/outside2"
echo keep >"$T/outside2/victim"
ln -s "$T/outside2" "$T/esc2/sub"
ln -s "$T/outside2/victim" "$T/esc2/b"
rc=0
R restore "$snapA:$SRC" --target "$T/esc2" >"$T/esc.out" 2>"$T/esc.err" || rc=$?
((rc != 0)) || fail "restore through a symlinked 'sub' in the target exited 0"
assert_not_crashed "$rc" "restore through a symlinked subdirectory"
assert_eq victim "$(ls -A "$T/outside2")" "contents of the symlinked-to directory"
assert_eq keep "$(cat "$T/outside2/victim")" "file behind a symlink in the target"
assert_file_same "$SRC/a" "$T/esc2/a"
rm_tree "$T/esc" "$T/esc2" "$T/outside" "$T/outside2"

step "disk full"
if [[ $(id -u) != 0 ]]; then
  skip "not root: cannot mount a small tmpfs"
else
  SMALL=$T/small
  mkdir "$SMALL"
  if ! mount -t tmpfs -o size=3m tmpfs "$SMALL" 2>"$T/mount.err"; then
    skip "cannot mount tmpfs: $(cat "$T/mount.err")"
  else
    on_exit "umount '$SMALL' 2>/dev/null || umount -l '$SMALL'"
    SR=$SMALL/repo
    new_repo "$SR"
    head -c $((512 * 1024)) /dev/zero >"$SMALL/filler"
    mkdir -p "$T/smallsrc"
    for i in 1 2 3; do random_file "$T/smallsrc/f$i" 3000; done
    expect_exit 0 cairn --repo "$SR" --json backup "$T/smallsrc"
    snapS=$(jq -r .snapshot_id "$OUT_FILE")
    cp -a "$T/smallsrc" "$T/smallsrc.0"
    mkdir -p "$T/bigsrc"
    random_file "$T/bigsrc/big" $((20 * 1024 * 1024))
    expect_exit 1 cairn --repo "$SR" backup "$T/bigsrc"
    grep -qiE 'no space|disk full|ENOSPC' <<<"$ERR" || fail "backup on a full disk does not say so: $ERR"
    assert_eq 1 "$(cairn --repo "$SR" --json snapshots | jq length)" "snapshots after the failed backup"
    stray=$(cd "$SR" && find . -name '.tmp-*')
    [[ -z $stray ]] || fail "failed backup left temporary files: $stray"
    rm -f "$SMALL/filler"
    expect_exit 0 cairn --repo "$SR" check
    expect_exit 0 cairn --repo "$SR" restore "$snapS:$T/smallsrc" --target "$T/out-small"
    assert_same_tree "$T/smallsrc.0" "$T/out-small"
    # With some space back, a small backup works and everything checks out.
    echo more >"$T/smallsrc/f4"
    expect_exit 0 cairn --repo "$SR" backup "$T/smallsrc"
    expect_exit 0 cairn --repo "$SR" check --read-data
    expect_exit 0 cairn --repo "$SR" restore "latest:$T/smallsrc" --target "$T/out-small2"
    assert_same_tree "$T/smallsrc" "$T/out-small2"
  fi
fi

step "restore never writes through hard links in the target"
# A file in the target that is a hard link to a file elsewhere must be
# replaced, not overwritten in place (which would change the file outside).
mkdir -p "$T/hl-target/sub" "$T/hl-outside"
echo precious >"$T/hl-outside/victim"
ln "$T/hl-outside/victim" "$T/hl-target/b"
ln "$T/hl-outside/victim" "$T/hl-target/sub/c"
rc=0
R restore "$snapA:$SRC" --target "$T/hl-target" >"$T/hl.out" 2>"$T/hl.err" || rc=$?
assert_not_crashed $((rc == 0 ? 1 : rc)) "restore over hard links"
[[ $(head -c 100 "$T/hl-outside/victim" | tr -d '\0') == precious ]] ||
  fail "restore (exit $rc) wrote through a hard link in the target: $T/hl-outside/victim now holds" \
    "$(stat -c %s "$T/hl-outside/victim") bytes instead of 'precious'"
if ((rc == 0)); then
  assert_same_tree "$T/stateA" "$T/hl-target"
fi
