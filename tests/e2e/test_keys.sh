# cairn key list|add|remove|passwd: several passwords open one repository,
# the key in use and the last key cannot be removed, passwd swaps keys.
# Usage: bash tests/e2e/test_keys.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }
FAST=(--kdf-iterations 1 --kdf-memory 8)
mkdir -p "$T/src" && echo hello >"$T/src/f"
R --quiet backup "$T/src" || fail "backup failed"

step "list shows one key, marked current"
expect_exit 0 R --json key list
assert_eq 1 "$(jq length <<<"$OUT")" "number of keys"
assert_eq true "$(jq -r '.[0].current' <<<"$OUT")" "current marker"
first=$(jq -r '.[0].id' <<<"$OUT")

step "add a second password; both open the repository"
expect_exit 2 R key add "${FAST[@]}" </dev/null  # no new password given
CAIRN_NEW_PASSWORD=second expect_exit 0 R --json key add "${FAST[@]}"
second=$(jq -r .added <<<"$OUT")
CAIRN_PASSWORD=second expect_exit 0 R snapshots
expect_exit 0 R snapshots
expect_exit 0 R --json key list
assert_eq 2 "$(jq length <<<"$OUT")" "number of keys after add"

step "the key in use cannot be removed; another one can"
expect_exit 2 R key remove "${first:0:8}"
assert_contains "$ERR" "in use"
CAIRN_PASSWORD=second expect_exit 0 R key remove "${first:0:8}"
expect_exit 12 R snapshots  # the first password no longer opens it
CAIRN_PASSWORD=second expect_exit 1 R key remove nosuchkey

step "the last key cannot be removed"
printf 'second\n' >"$T/pw"
CAIRN_PASSWORD='' CAIRN_PASSWORD_FILE=$T/pw expect_exit 2 R key remove "${second:0:8}"

step "passwd replaces the key in use"
CAIRN_PASSWORD=second CAIRN_NEW_PASSWORD=third expect_exit 0 R key passwd "${FAST[@]}"
CAIRN_PASSWORD=second expect_exit 12 R snapshots
CAIRN_PASSWORD=third expect_exit 0 R --json key list
assert_eq 1 "$(jq length <<<"$OUT")" "number of keys after passwd"
CAIRN_PASSWORD=third expect_exit 0 R restore latest --target "$T/out" --verify
assert_file_same "$T/src/f" "$T/out$T/src/f"
CAIRN_PASSWORD=third expect_exit 0 R check --read-data

step "an append-only key can back up but not forget or remove keys"
CAIRN_PASSWORD=third CAIRN_NEW_PASSWORD=agent expect_exit 0 R --json key add --append-only "${FAST[@]}"
agent=$(jq -r .added <<<"$OUT")
CAIRN_PASSWORD=agent expect_exit 0 R backup "$T/src"
CAIRN_PASSWORD=agent expect_exit 1 R forget --keep-last 1
assert_contains "$ERR" "append-only"
CAIRN_PASSWORD=agent expect_exit 0 R forget --keep-last 1 --dry-run   # looking is fine
CAIRN_PASSWORD=agent expect_exit 1 R key remove "${agent:0:8}"
CAIRN_PASSWORD=agent CAIRN_NEW_PASSWORD=agent2 expect_exit 0 R --json key add "${FAST[@]}"
CAIRN_PASSWORD=third expect_exit 0 R --json key list
assert_eq 2 "$(jq '[.[] | select(.append_only)] | length' <<<"$OUT")" "keys added by an append-only key are append-only"
CAIRN_PASSWORD=third expect_exit 0 R forget --keep-last 1
step "a generated key file opens the repository without a password or KDF"
CAIRN_PASSWORD=third expect_exit 0 R --json key add --new-key-file "$T/agent.key"
keyfile_id=$(jq -r .added <<<"$OUT")
assert_eq 600 "$(stat -c %a "$T/agent.key")" "key file mode"
(unset CAIRN_PASSWORD; expect_exit 0 R --key-file "$T/agent.key" backup "$T/src") || fail "backup with --key-file"
(unset CAIRN_PASSWORD; CAIRN_KEY_FILE=$T/agent.key expect_exit 0 R --json key list
 assert_eq keyfile "$(jq -r '.[] | select(.current) | .type' <<<"$OUT")" "type of the key in use") || fail "key list"
CAIRN_PASSWORD=third expect_exit 1 R key add --new-key-file "$T/agent.key"  # never overwrites
assert_contains "$ERR" "agent.key"
head -c 44 /dev/urandom | base64 -w0 >"$T/wrong.key"
expect_exit 12 R --key-file "$T/wrong.key" snapshots
echo short >"$T/short.key"
expect_exit 2 R --key-file "$T/short.key" snapshots
assert_contains "$ERR" "holds no key"
CAIRN_PASSWORD=third expect_exit 0 R key remove "${keyfile_id:0:8}"
expect_exit 12 R --key-file "$T/agent.key" snapshots
echo "PASS test_keys"
