# backup --stdin and --stdin-from-command: byte-exact round trips, and a
# failing, killed or silent command never produces a snapshot.
# Usage: bash tests/e2e/test_stdin.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }
count() { snapshot_count "$REPO"; }

step "--stdin, small"
printf data | R --json backup --stdin --stdin-filename x.sql >"$T/b.json" || fail "backup --stdin failed"
snap=$(jq -r .snapshot_id "$T/b.json")
R dump "$snap:/x.sql" >"$T/x.out" || fail "dump $snap:/x.sql failed"
assert_eq "data" "$(cat "$T/x.out")" "dumped stdin data"
assert_eq 4 "$(stat -c %s "$T/x.out")" "size of the dumped stdin data"
expect_exit 0 R ls "$snap"
assert_eq "/x.sql" "$OUT" "ls of a --stdin snapshot"
jq -e '.[0].paths == ["/x.sql"]' <(R --json snapshots) >/dev/null || fail "paths of a --stdin snapshot"

step "--stdin, 30 MiB random"
random_file "$T/big" $((30 * 1024 * 1024))
# shellcheck disable=SC2002 # a pipe, not a file, on stdin
cat "$T/big" | R --json backup --stdin --stdin-filename big.bin >"$T/b.json" || fail "backup --stdin of 30 MiB failed"
snap=$(jq -r .snapshot_id "$T/b.json")
assert_eq $((30 * 1024 * 1024)) "$(jq -r .summary.total_bytes "$T/b.json")" "total_bytes of the 30 MiB stdin backup"
R dump "$snap:/big.bin" >"$T/big.out" || fail "dump of the 30 MiB stdin backup failed"
assert_file_same "$T/big" "$T/big.out"
expect_exit 0 R restore "$snap" --target "$T/restore-big" --verify
assert_file_same "$T/big" "$T/restore-big/big.bin"
rm_tree "$T/big.out" "$T/restore-big"
# The same data again stores nothing new.
R --json backup --stdin --stdin-filename big2.bin <"$T/big" >"$T/b.json" || fail "second stdin backup failed"
assert_eq 0 "$(jq -r .summary.data_blobs "$T/b.json")" "new data blobs for identical stdin data"
# Empty input file name default and usage errors.
expect_exit 2 R backup --stdin "$T/big" </dev/null
expect_exit 2 R backup --stdin --stdin-from-command -- true </dev/null

step "--stdin-from-command: failing command"
n0=$(count)
expect_exit 1 R backup --stdin-from-command --stdin-filename db.sql -- sh -c 'echo partial; exit 3'
assert_contains "$ERR" "status 3" "stderr for a command exiting 3"
assert_eq "$n0" "$(count)" "snapshot count after a failing command"

step "--stdin-from-command: failing after lots of output"
expect_exit 1 R backup --stdin-from-command --stdin-filename db.sql -- \
  sh -c 'head -c 20000000 /dev/urandom; exit 1'
assert_contains "$ERR" "status 1" "stderr for a command exiting 1 after output"
assert_eq "$n0" "$(count)" "snapshot count after a command failing late"

step "--stdin-from-command: command killed by a signal"
expect_exit 1 R backup --stdin-from-command --stdin-filename db.sql -- sh -c 'echo x; kill -9 $$'
assert_contains "$ERR" "signal 9" "stderr for a killed command"
assert_eq "$n0" "$(count)" "snapshot count after a killed command"

step "--stdin-from-command: command producing nothing"
expect_exit 1 R backup --stdin-from-command --stdin-filename db.sql -- sh -c 'exit 0'
assert_contains "$ERR" "no output" "stderr for a silent command"
assert_eq "$n0" "$(count)" "snapshot count after a silent command"

step "--stdin-from-command: command that does not exist"
expect_exit 1 R backup --stdin-from-command --stdin-filename db.sql -- "$T/no-such-command"
assert_contains "$ERR" "no-such-command" "stderr for a missing command"
assert_eq "$n0" "$(count)" "snapshot count after a missing command"
expect_exit 0 R check

step "--stdin-from-command: good commands"
expect_exit 0 R --json backup --stdin-from-command --stdin-filename rand.bin -- sh -c 'head -c 5000000 /dev/urandom'
snap=$(jq -r .snapshot_id "$OUT_FILE")
assert_eq $((n0 + 1)) "$(count)" "snapshot count after a good command"
assert_eq 5000000 "$(R dump "$snap:/rand.bin" | wc -c)" "size of the dumped command output"
random_file "$T/cmd.data" 3000000
expect_exit 0 R --json backup --stdin-from-command --stdin-filename copy.bin -- cat "$T/cmd.data"
snap=$(jq -r .snapshot_id "$OUT_FILE")
R dump "$snap:/copy.bin" >"$T/cmd.out" || fail "dump of the command output failed"
assert_file_same "$T/cmd.data" "$T/cmd.out"
# The command's exit status 0 after a large output is a success even if cairn
# reads slower than the command writes.
expect_exit 0 R backup --stdin-from-command --stdin-filename slow.bin -- \
  sh -c 'for i in 1 2 3; do head -c 1000000 /dev/zero; sleep 0.2; done'
assert_eq 3000000 "$(R dump latest:/slow.bin | wc -c)" "size of a slowly written command output"

step "--time, --tag, --service"
TZ=UTC expect_exit 0 R --json backup --stdin --stdin-filename t.sql --time '2025-01-02 03:04:05' \
  --tag a,b --service shop <<<"timed"
snap_shop=$(jq -r .snapshot_id "$OUT_FILE")
R --json snapshots >"$T/snaps.json"
t=$(jq -r --arg s "$snap_shop" '.[] | select(.id == $s) | .time' "$T/snaps.json")
assert_eq "$(TZ=UTC date -d '2025-01-02 03:04:05' +%s)" "$(date -d "$t" +%s)" "recorded --time ($t)"
[[ $t == 2025-01-02T03:04:05* ]] || fail "recorded --time is '$t', expected 2025-01-02T03:04:05..."
assert_eq '["a","b"]' "$(jq -c --arg s "$snap_shop" '.[] | select(.id == $s) | .tags' "$T/snaps.json")" "recorded tags"
assert_eq shop "$(jq -r --arg s "$snap_shop" '.[] | select(.id == $s) | .service' "$T/snaps.json")" "recorded service"
# An explicit zone is honoured.
expect_exit 0 R --json backup --stdin --stdin-filename t2.sql --time '2025-01-02T03:04:05+02:00' \
  --service other <<<"zoned"
snap_other=$(jq -r .snapshot_id "$OUT_FILE")
t=$(R --json snapshots | jq -r --arg s "$snap_other" '.[] | select(.id == $s) | .time')
assert_eq "$(date -d '2025-01-02T01:04:05Z' +%s)" "$(date -d "$t" +%s)" "recorded --time with a zone ($t)"
expect_exit 2 R backup --stdin --time 'yesterday-ish' <<<"x"
# Filters.
R --json snapshots --service shop >"$T/shop.json"
assert_eq "[\"$snap_shop\"]" "$(jq -c 'map(.id)' "$T/shop.json")" "snapshots --service shop"
R --json snapshots --tag b >"$T/tag.json"
assert_eq "[\"$snap_shop\"]" "$(jq -c 'map(.id)' "$T/tag.json")" "snapshots --tag b"
assert_eq "[]" "$(R --json snapshots --service nope | jq -c .)" "snapshots --service nope"
expect_exit 0 R snapshots --service shop
assert_contains "$OUT" "${snap_shop:0:8}" "snapshots --service shop (text)"
assert_contains "$OUT" "1 snapshot(s)" "snapshots --service shop (text)"
assert_eq timed "$(R dump "$snap_shop:/t.sql")" "dump of the --time snapshot"

step "check"
expect_exit 0 R check --read-data
