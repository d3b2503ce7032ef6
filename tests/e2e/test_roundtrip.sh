# Backup -> restore round trip of awkward trees, plus the read-only commands
# (ls, diff, dump, stats, snapshots, check) on the result.
# Usage: bash tests/e2e/test_roundtrip.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
SRC=$T/src
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }

step "building the source tree"
mkdir -p "$SRC"
cd "$SRC" || exit 1
mkdir empty_dir
: >zero
printf 'x' >one
random_file f511k $((511 * 1024))
random_file f513k $((513 * 1024))
random_file f20m $((20 * 1024 * 1024))
# Hard links, one of them in another directory.
mkdir -p hl/sub
random_file hl/a 70000
ln hl/a hl/b
ln hl/a hl/sub/c
# Symlinks: relative, absolute, dangling, to a directory.
mkdir links
ln -s ../one links/rel
ln -s /etc/hostname links/abs
ln -s does/not/exist links/dangling
ln -s ../hl links/dirlink
# Special names.
mkdir names
echo newline >"names/new"$'\n'"line"
echo nonutf8 >"names/"$'\xff\xfe'
echo space >"names/with space"
echo dash >"names/-leading-dash"
echo glob >"names/star*?[x]"
echo backslash >"names/back\\slash"
echo tab >"names/tab"$'\t'"x"
mkdir "names/dir with "$'\n'"newline"
echo inner >"names/dir with "$'\n'"newline/inner"
# Deep tree (depth 60).
deep=deep
for i in $(seq 1 59); do deep+=/d$i; done
mkdir -p "$deep"
echo bottom >"$deep/leaf"
# Permissions and times.
mkdir perms
echo secret >perms/p600 && chmod 0600 perms/p600
printf '#!/bin/sh\n' >perms/p755 && chmod 0755 perms/p755
echo ro >perms/p444 && chmod 0444 perms/p444
mkdir perms/d700 && echo in >perms/d700/f && chmod 0700 perms/d700
mkdir perms/d755 && chmod 0755 perms/d755
mkdir perms/d555 && echo in >perms/d555/f && chmod 0555 perms/d555
mkdir perms/d1777 && chmod 1777 perms/d1777
echo suid >perms/s4755 && chmod 4755 perms/s4755
touch -d '2001-02-03 04:05:06' one perms/p600
touch -d '2020-01-01 00:00:00.123456789' perms/p444
# Special files and more awkward names.
mkfifo fifo
echo long >"$(printf 'n%.0s' $(seq 1 255))"
# Small sparse files: a hole at the end, and nothing but a hole.
printf 'head' >hole_end && truncate -s 50M hole_end
truncate -s 5M all_hole
touch -h -d '2002-03-04 05:06:07' links/rel
# Ownership (restorable as root only).
echo owned >owned
is_root=0
if [[ $(id -u) == 0 ]] && id nobody >/dev/null 2>&1; then
  chown nobody: owned
  is_root=1
fi
# Extended attributes (the file system may refuse user xattrs).
echo xattr >xfile
have_xattr=0
if command -v setfattr >/dev/null && setfattr -n user.k -v v xfile 2>/dev/null; then
  setfattr -n user.other -v $'bin\x01ary' xfile
  have_xattr=1
else
  skip "file system refuses user xattrs; not testing them"
fi
# Directory mtimes last: creating entries above changed them.
touch -d '2003-04-05 06:07:08' empty_dir perms/d755 hl/sub
cd "$T" || exit 1
# Directory mtimes of the restore are compared too, so leave $SRC untouched from here.

step "first backup"
expect_exit 0 R --json backup "$SRC"
echo "$OUT" >"$T/b1.json"
snap1=$(json_get "$T/b1.json" .snapshot_id)
nfiles=$(find "$SRC" -type f -printf x | wc -c)
assert_eq "$nfiles" "$(json_get "$T/b1.json" .summary.files_new)" "files_new of the first backup"
assert_eq 0 "$(json_get "$T/b1.json" '.warnings | length')" "warnings of the first backup"

step "full restore"
expect_exit 0 R restore "$snap1:$SRC" --target "$T/r1"
assert_same_tree "$SRC" "$T/r1"
# Hard links share an inode again; the symlink kept its own mtime.
ino=$(stat -c %i "$T/r1/hl/a")
assert_eq "$ino" "$(stat -c %i "$T/r1/hl/b")" "inode of hl/b"
assert_eq "$ino" "$(stat -c %i "$T/r1/hl/sub/c")" "inode of hl/sub/c"
assert_eq 3 "$(stat -c %h "$T/r1/hl/a")" "link count of hl/a"
for f in one perms/p600 empty_dir perms/d755 hl/sub f20m; do
  assert_eq "$(stat -c %Y "$SRC/$f")" "$(stat -c %Y "$T/r1/$f")" "mtime of $f"
done
assert_eq "$(stat -c %Y "$SRC/links/rel")" "$(stat -c %Y "$T/r1/links/rel")" "mtime of symlink links/rel"
assert_eq "/etc/hostname" "$(readlink "$T/r1/links/abs")" "absolute symlink target"
assert_eq "does/not/exist" "$(readlink "$T/r1/links/dangling")" "dangling symlink target"
assert_eq 700 "$(stat -c %a "$T/r1/perms/d700")" "mode of perms/d700"
assert_eq 600 "$(stat -c %a "$T/r1/perms/p600")" "mode of perms/p600"
assert_eq 755 "$(stat -c %a "$T/r1/perms/p755")" "mode of perms/p755"
assert_eq 1777 "$(stat -c %a "$T/r1/perms/d1777")" "mode of perms/d1777"
assert_eq 4755 "$(stat -c %a "$T/r1/perms/s4755")" "mode of perms/s4755"
assert_eq "2020-01-01 00:00:00.123456789" "$(TZ=UTC stat -c %y "$T/r1/perms/p444" | cut -c1-29)" "nanosecond mtime"
[[ -p $T/r1/fifo ]] || fail "fifo not restored as a fifo"
assert_eq $((50 * 1024 * 1024)) "$(stat -c %s "$T/r1/hole_end")" "size of hole_end"
(($(du -k "$T/r1/hole_end" | cut -f1) < 1024)) || fail "hole_end restored without its hole"
(($(du -k "$T/r1/all_hole" | cut -f1) < 64)) || fail "all_hole restored without its hole"
if ((is_root)); then
  assert_eq nobody "$(stat -c %U "$T/r1/owned")" "owner of 'owned'"
fi
if ((have_xattr)); then
  assert_eq v "$(getfattr --absolute-names --only-values -n user.k "$T/r1/xfile")" "xattr user.k"
  assert_eq "$(getfattr --absolute-names --only-values -n user.other "$SRC/xfile" | od -c)" \
    "$(getfattr --absolute-names --only-values -n user.other "$T/r1/xfile" | od -c)" "xattr user.other"
fi

step "restore again over the previous restore"
chmod 0644 "$T/r1/perms/p600"
echo scribble >"$T/r1/f513k"
rm "$T/r1/hl/b"
expect_exit 0 R restore "$snap1:$SRC" --target "$T/r1"
assert_same_tree "$SRC" "$T/r1"
assert_eq "$(stat -c %i "$T/r1/hl/a")" "$(stat -c %i "$T/r1/hl/b")" "inode of hl/b after a second restore"
rm_tree "$T/r1"

step "restore of the whole snapshot recreates the absolute path"
expect_exit 0 R restore "$snap1" --target "$T/r_all" --exclude f20m
[[ -f $T/r_all$SRC/f513k ]] || fail "full-snapshot restore lacks $T/r_all$SRC/f513k"
[[ ! -e $T/r_all$SRC/f20m ]] || fail "--exclude f20m restored f20m anyway"
rm_tree "$T/r_all"

step "restore --verify"
expect_exit 0 R restore "$snap1:$SRC" --target "$T/r_verify" --verify
assert_contains "$OUT" "verified" "restore --verify output"
assert_same_tree "$SRC" "$T/r_verify"
rm_tree "$T/r_verify"

step "single-file restore"
expect_exit 0 R restore "$snap1:$SRC/f513k" --target "$T/r_one"
assert_eq "f513k" "$(ls -A "$T/r_one")" "single-file restore contents"
assert_file_same "$SRC/f513k" "$T/r_one/f513k"

step "restore --include / --exclude"
expect_exit 0 R restore "$snap1:$SRC" --target "$T/r_inc" --include 'f51*'
assert_eq $'f511k\nf513k' "$(cd "$T/r_inc" && find . -mindepth 1 -printf '%P\n' | sort)" "--include 'f51*' result"
assert_file_same "$SRC/f511k" "$T/r_inc/f511k"
expect_exit 0 R restore "$snap1:$SRC" --target "$T/r_inc2" --include "$SRC/hl"
assert_eq $'hl\nhl/a\nhl/b\nhl/sub\nhl/sub/c' "$(cd "$T/r_inc2" && find . -mindepth 1 -printf '%P\n' | sort)" \
  "--include $SRC/hl result"
assert_eq "$(stat -c %i "$T/r_inc2/hl/a")" "$(stat -c %i "$T/r_inc2/hl/sub/c")" "hard link in --include restore"
expect_exit 0 R restore "$snap1:$SRC" --target "$T/r_exc" --exclude "$SRC/deep" --exclude 'f*k' --exclude f20m
[[ ! -e $T/r_exc/deep && ! -e $T/r_exc/f511k && ! -e $T/r_exc/f513k && ! -e $T/r_exc/f20m ]] ||
  fail "--exclude restored excluded paths: $(ls -A "$T/r_exc")"
# Everything else is there.
rm_tree "$T/src_exc" && mkdir "$T/src_exc"
(cd "$SRC" && find . -mindepth 1 -maxdepth 1 ! -name deep ! -name 'f*k' ! -name f20m -print0 |
  xargs -0 cp -a --target-directory="$T/src_exc")
assert_same_tree "$T/src_exc" "$T/r_exc"
rm_tree "$T/r_inc" "$T/r_inc2" "$T/r_exc" "$T/src_exc" "$T/r_one"

step "ls"
expect_exit 0 R ls "$snap1:$SRC"
ls_out=$OUT
for p in "$SRC" "$SRC/one" "$SRC/f20m" "$SRC/hl/sub/c" "$SRC/links/dangling" "$SRC/names/with space" \
  "$SRC/names/-leading-dash" "$SRC/names/new\\nline" "$SRC/names/\\xff\\xfe" "$SRC/$deep/leaf" "$SRC/empty_dir"; do
  grep -qxF -- "$p" <<<"$ls_out" || fail "ls does not list '$p'; it printed:"$'\n'"$(head -n 40 <<<"$ls_out")"
done
# One line per entry, even for names with newlines.
assert_eq "$(($(find "$SRC" -mindepth 1 -printf x | wc -c) + 1))" "$(wc -l <<<"$ls_out")" "number of ls lines"
expect_exit 0 R --json ls "$snap1:$SRC/links"
jq -e -s 'map(select(.path | endswith("/links/rel")))[0] | .type == "symlink" and .link_target == "../one"' \
  "$OUT_FILE" >/dev/null || fail "ls --json lacks links/rel -> ../one: $OUT"

step "dump"
R dump "$snap1:$SRC/f20m" >"$T/dump.f20m"
assert_file_same "$SRC/f20m" "$T/dump.f20m"
R dump "$snap1:$SRC/zero" >"$T/dump.zero"
assert_file_same "$SRC/zero" "$T/dump.zero"
R dump "$snap1:$SRC/names/with space" >"$T/dump.space"
assert_file_same "$SRC/names/with space" "$T/dump.space"
rm -f "$T"/dump.*
R dump "$snap1:$SRC" >"$T/dump.tar"
tar_quiet() { tar "$@" 2> >(grep -v "unknown extended header keyword 'hdrcharset'" >&2); }
tar_quiet -tf "$T/dump.tar" >"$T/tar.list"
for p in one f511k hl/b hl/sub/c links/rel empty_dir "names/with space" "names/-leading-dash" "$deep/leaf"; do
  grep -qxF -e "$p" -e "$p/" "$T/tar.list" || fail "dump tar lacks '$p'; it has:"$'\n'"$(head -n 40 "$T/tar.list")"
done
mkdir "$T/untar"
tar_quiet -xf "$T/dump.tar" -C "$T/untar"
assert_same_content "$SRC" "$T/untar"
assert_eq 600 "$(stat -c %a "$T/untar/perms/p600")" "mode of perms/p600 in the dump tar"
assert_eq "$(stat -c %Y "$SRC/one")" "$(stat -c %Y "$T/untar/one")" "mtime of 'one' in the dump tar"
[[ -p $T/untar/fifo ]] || fail "dump tar lacks the fifo"
rm_tree "$T/untar" "$T/dump.tar"

step "unchanged second backup"
expect_exit 0 R --json backup "$SRC"
echo "$OUT" >"$T/b2.json"
snap2=$(json_get "$T/b2.json" .snapshot_id)
assert_eq 0 "$(json_get "$T/b2.json" .summary.files_new)" "files_new of the unchanged backup"
assert_eq 0 "$(json_get "$T/b2.json" .summary.files_changed)" "files_changed of the unchanged backup"
assert_eq "$nfiles" "$(json_get "$T/b2.json" .summary.files_unmodified)" "files_unmodified of the unchanged backup"
# (Tree blobs for $T and its parents change as the test writes there; file data must not.)
assert_eq 0 "$(json_get "$T/b2.json" .summary.data_blobs)" "data_blobs of the unchanged backup"
expect_exit 0 R diff "$snap1" "$snap2"
assert_contains "$OUT" "0 added, 0 removed, 0 modified, 0 metadata only" "diff of identical snapshots"

step "one changed file"
mtime_dir=$(stat -c %y "$SRC")
printf 'changed' >"$SRC/f511k.new" && cat "$SRC/f511k.new" >>"$SRC/f511k" && rm "$SRC/f511k.new"
touch -d "$mtime_dir" "$SRC"
expect_exit 0 R --json backup "$SRC"
echo "$OUT" >"$T/b3.json"
snap3=$(json_get "$T/b3.json" .snapshot_id)
assert_eq 1 "$(json_get "$T/b3.json" .summary.files_changed)" "files_changed after changing one file"
assert_eq 0 "$(json_get "$T/b3.json" .summary.files_new)" "files_new after changing one file"
expect_exit 0 R diff "$snap2" "$snap3"
assert_eq "M    $SRC/f511k" "$(grep -v '^$' <<<"$OUT" | grep -v 'added,')" "diff output"
expect_exit 0 R --json diff "$snap2" "$snap3"
assert_eq 1 "$(tail -n 1 "$OUT_FILE" | jq .summary.modified)" "diff --json modified count"
expect_exit 0 R restore latest:"$SRC" --target "$T/r3"
assert_same_tree "$SRC" "$T/r3"
rm_tree "$T/r3"

step "sparse 10 GiB file"
mkdir "$T/sparse"
SP=$T/sparse/big
truncate -s 10G "$SP"
random_file "$T/blk" $((1024 * 1024))
offsets=(0 $((1024 * 1024 * 1024 + 12345)) $((5 * 1024 * 1024 * 1024)) $((10 * 1024 * 1024 * 1024 - 1024 * 1024)))
for off in "${offsets[@]}"; do
  dd if="$T/blk" of="$SP" bs=1M seek="$off" oflag=seek_bytes conv=notrunc status=none
done
t0=$SECONDS
expect_exit 0 R --json backup "$T/sparse"
(( SECONDS - t0 <= 60 )) || fail "backup of a 10 GiB sparse file took $((SECONDS - t0)) s"
echo "backup of the sparse file took $((SECONDS - t0)) s"
expect_exit 0 R restore latest:"$T/sparse" --target "$T/r_sparse"
RS=$T/r_sparse/big
assert_eq $((10 * 1024 * 1024 * 1024)) "$(stat -c %s "$RS")" "size of the restored sparse file"
alloc_kib=$(du -k "$RS" | cut -f1)
((alloc_kib < 100 * 1024)) || fail "restored sparse file allocates $alloc_kib KiB (not sparse)"
region() { dd if="$1" bs=1M skip="$2" count=1 iflag=skip_bytes status=none | sha256sum | cut -d' ' -f1; }
blk_sum=$(sha256sum <"$T/blk" | cut -d' ' -f1)
for off in "${offsets[@]}"; do
  assert_eq "$blk_sum" "$(region "$RS" "$off")" "data block at offset $off of the sparse file"
done
zero_sum=$(head -c $((1024 * 1024)) /dev/zero | sha256sum | cut -d' ' -f1)
for off in $((1024 * 1024)) $((3 * 1024 * 1024 * 1024 + 7)) $((10 * 1024 * 1024 * 1024 - 2 * 1024 * 1024)); do
  assert_eq "$zero_sum" "$(region "$RS" "$off")" "hole at offset $off of the sparse file"
done
# dump streams the same bytes (check only the start, reading 10 GiB is slow).
R dump latest:"$SP" 2>/dev/null | head -c $((2 * 1024 * 1024)) >"$T/sp.head" || true
cmp -s "$T/sp.head" <(head -c $((2 * 1024 * 1024)) "$SP") || fail "dump of the sparse file differs in its first 2 MiB"
rm_tree "$T/r_sparse" "$T/sp.head"

step "stats, snapshots, check"
expect_exit 0 R --json stats
echo "$OUT" >"$T/stats.json"
jq -e '.snapshots == 4 and .restore_size > 0 and .raw_data > 0 and .unique_blobs > 0 and .dedup_ratio > 1' \
  "$T/stats.json" >/dev/null || fail "stats --json lacks sensible dedup data: $OUT"
expect_exit 0 R --json stats "$snap1"
jq -e '.snapshots == 1 and .dedup_ratio >= 1' "$OUT_FILE" >/dev/null || fail "stats --json $snap1: $OUT"
expect_exit 0 R --json snapshots
jq -e --arg a "$snap1" --arg b "$snap3" \
  'length == 4 and (map(.id) | index($a) != null and index($b) != null) and all(.[]; .time and .tree and .paths)' \
  "$OUT_FILE" >/dev/null || fail "snapshots --json: $OUT"
assert_eq "$snap2" "$(jq -r --arg b "$snap3" '.[] | select(.id == $b) | .parent' "$OUT_FILE")" "parent of the third snapshot"
expect_exit 0 R check
expect_exit 0 R check --read-data
assert_contains "$OUT" "no errors" "check --read-data output"
