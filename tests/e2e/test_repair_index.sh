# A pack that an index still names is removed from storage: prune refuses
# and explains, check names the pack and the affected snapshots, `repair
# index` rebuilds the index from the pack headers, and check then reports
# exactly the snapshots whose data is really gone (a snapshot whose data has
# another copy is clean again).
# Usage: bash tests/e2e/test_repair_index.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }
packs() { (cd "$REPO/data" && find . -type f -printf '%s %f\n' | sort -k2); }
# new_data_pack BEFORE: the largest pack not listed in BEFORE (the data pack of a backup).
new_data_pack() { packs | grep -vxF -f <(cat "$1") | sort -n | tail -1 | cut -d' ' -f2; }

step "two backups of different data; the first one's data stored twice"
mkdir -p "$T/one" "$T/two"
random_file "$T/one/a" 1500000
random_file "$T/one/b" 800000
random_file "$T/two/c" 1200000
packs >"$T/p0"
expect_exit 0 R --json backup "$T/one"
snap1=$(jq -r .snapshot_id <<<"$OUT")
pack1=$(new_data_pack "$T/p0")
packs >"$T/p1"
expect_exit 0 R --json backup "$T/two"
snap2=$(jq -r .snapshot_id <<<"$OUT")
pack2=$(new_data_pack "$T/p1")
# A second copy of the first backup's data: back up again while the index is
# hidden (so nothing dedups), then put the old index files back.
mkdir -p "$T/idx"
mv "$REPO"/index/* "$T/idx/"
expect_exit 0 R --json backup "$T/one" --force
snap3=$(jq -r .snapshot_id <<<"$OUT")
mv "$T/idx"/* "$REPO/index/"
expect_exit 0 R check
echo "snapshots: one $snap1, two $snap2, one again $snap3; packs removed: $pack1 $pack2"

step "the data packs of the first two backups disappear"
rm "$REPO/data/${pack1:0:2}/$pack1" "$REPO/data/${pack2:0:2}/$pack2"

step "prune refuses and explains"
expect_exit 1 R prune
assert_contains "$ERR" "$pack1" "prune's error"
assert_contains "$ERR" "missing" "prune's error"
assert_contains "$ERR" "cairn check" "prune's error"
assert_contains "$ERR" "cairn repair index" "prune's error"
expect_exit 1 R prune --exclusive

step "check names the missing packs and the snapshots they affect"
expect_exit 1 R --json check
assert_eq "$(printf '%s\n' "$pack1" "$pack2" | sort)" "$(jq -r '.damaged_packs[]' <<<"$OUT" | sort)" "damaged packs"
affected=$(jq -r '.affected_snapshots[]' <<<"$OUT" | sort | tr '\n' ' ')
assert_contains "$affected" "$snap2" "affected snapshots"
assert_contains "$(jq -r '.errors[]' <<<"$OUT")" "pack $pack1 is missing" "check errors"

step "repair index rebuilds the index from the pack headers"
expect_exit 0 R --json repair index
assert_eq "[]" "$(jq -c .unreadable_packs <<<"$OUT")" "unreadable packs"
((${#REPO} > 0 && $(jq .index_files_removed <<<"$OUT") >= 3)) || fail "old index files not removed: $OUT"
assert_eq "$(find "$REPO/index" -type f | wc -l)" "$(jq .index_files_written <<<"$OUT")" "index files after repair"

step "check now names exactly the snapshot whose data is gone"
expect_exit 1 R --json check
assert_eq "$snap2" "$(jq -r '.affected_snapshots | join(" ")' <<<"$OUT")" "damaged snapshots after repair"
assert_eq "[]" "$(jq -c .damaged_packs <<<"$OUT")" "damaged packs after repair"
expect_exit 0 R restore "$snap1" --target "$T/out1" --verify
assert_same_content "$T/one" "$T/out1$T/one"
expect_exit 1 R restore "$snap2" --target "$T/out2"

step "after forgetting the damaged snapshot, prune and check are clean"
expect_exit 0 R forget "$snap2"
expect_exit 0 R prune
expect_exit 0 R prune
expect_exit 0 R check --read-data
expect_exit 0 R restore "$snap3" --target "$T/out3" --verify
assert_same_content "$T/one" "$T/out3$T/one"

step "repair index on a healthy repository changes no snapshot"
expect_exit 0 R repair index
expect_exit 0 R check --read-data
echo "PASS test_repair_index"
