# Write-only agent keys (cairn key add --agent): an agent backs up with a key
# that holds no master key; the repository's password holders read what it
# wrote; the agent itself can read, forget, prune and remove nothing.
# Usage: bash tests/e2e/test_agent_keys.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

REPO=$T/repo
new_repo "$REPO"
R() { cairn --repo "$REPO" "$@"; }
A() { CAIRN_PASSWORD='' cairn --repo "$REPO" --key-file "$T/agent.key" "$@"; }

mkdir -p "$T/src/sub" "$T/old"
head -c 3000000 /dev/urandom >"$T/src/big.bin"
cp "$T/src/big.bin" "$T/src/sub/copy.bin"   # same content twice: dedup within the session
printf 'hello agent\n' >"$T/src/sub/small.txt"
ln -s sub/small.txt "$T/src/link"
printf 'written with the password\n' >"$T/old/secret.txt"

step "a snapshot made with the password before any agent key exists"
expect_exit 0 R backup "$T/old"
expect_exit 0 R --json snapshots
assert_eq 1 "$(jq length <<<"$OUT")" "snapshots before the agent"

step "key add --agent writes a key file; the key is listed as type agent"
expect_exit 0 R --json key add --agent --new-key-file "$T/agent.key"
agent_id=$(jq -r .added <<<"$OUT")
[[ -s $T/agent.key ]] || fail "no agent key file written"
assert_eq 600 "$(stat -c %a "$T/agent.key")" "agent key file mode"
expect_exit 0 R --json key list
assert_eq agent "$(jq -r --arg id "$agent_id" '.[] | select(.id == $id) | .type' <<<"$OUT")" "key type"
grep -q '"x25519"' "$REPO/keys/$agent_id" || fail "agent key file has no repository key"
expect_exit 1 R key add --agent --new-key-file "$T/agent.key"   # never overwrites a file

step "the agent backs up"
expect_exit 0 A backup "$T/src" --tag agent
echo "agent stored data without the master key" >"$T/stdin.txt"
expect_exit 0 A backup --stdin --stdin-filename note.txt --service shop <"$T/stdin.txt"

step "everything the agent wrote is sealed: no agent file opens with the master key alone"
for f in "$REPO"/index/* "$REPO"/snapshots/*; do
  if [[ $(head -c 4 "$f") == CAG1 ]]; then agent_files=$((${agent_files:-0} + 1)); fi
done
((${agent_files:-0} >= 4)) || fail "expected sealed index and snapshot files, found ${agent_files:-0}"

step "with the password: snapshots lists it, restore is byte-exact, check --read-data passes"
expect_exit 0 R --json snapshots
assert_eq 3 "$(jq length <<<"$OUT")" "snapshots after the agent"
assert_eq 1 "$(jq '[.[] | select(.tags | index("agent"))] | length' <<<"$OUT")" "agent snapshot tagged"
assert_eq 2 "$(jq '[.[] | select(.written_by_agent)] | length' <<<"$OUT")" "snapshots flagged as written by an agent"
assert_eq null "$(jq '.[0].written_by_agent' <<<"$OUT")" "the password's snapshot is not flagged"
expect_exit 0 R snapshots
assert_contains "$OUT" "written by a write-only agent key"
expect_exit 0 R restore latest --service shop --target "$T/out-stdin"
assert_file_same "$T/stdin.txt" "$T/out-stdin/note.txt"
expect_exit 0 R --json snapshots --tag agent
snap=$(jq -r '.[0].id' <<<"$OUT")
expect_exit 0 R restore "$snap" --target "$T/out" --verify
assert_same_content "$T/src" "$T/out$T/src"
expect_exit 0 R dump "$snap:$T/src/sub/small.txt"
assert_eq "hello agent" "$OUT" "dump of an agent file"
expect_exit 0 R check --read-data

step "with the agent key: no reading"
expect_exit 1 A snapshots
assert_contains "$ERR" "write-only agent key"
expect_exit 1 A restore "$snap" --target "$T/agent-out"
[[ ! -e $T/agent-out$T/src/big.bin ]] || fail "the agent restored data"
expect_exit 1 A dump "$snap:$T/src/sub/small.txt"
assert_not_contains "$OUT" "hello agent"
expect_exit 1 A ls latest
expect_exit 1 A check --read-data

step "with the agent key: no deleting"
before=$(find "$REPO" -type f ! -path '*/locks/*' | sort | md5sum)
expect_exit 1 A forget --keep-last 1
expect_exit 1 A forget "${snap:0:8}"
expect_exit 1 A prune
expect_exit 1 A key remove "${agent_id:0:8}"
first_key=$(find "$REPO/keys" -type f ! -name "$agent_id" -printf '%f\n' | head -n1)
expect_exit 1 A key remove "${first_key:0:8}"
expect_exit 1 A unlock --remove-all
CAIRN_NEW_PASSWORD=x expect_exit 1 A key add --kdf-iterations 1 --kdf-memory 8
after=$(find "$REPO" -type f ! -path '*/locks/*' | sort | md5sum)
assert_eq "$before" "$after" "repository files after the agent's attempts"

step "a second agent key shares the repository key pair; a wrong key file is refused"
expect_exit 0 R --json key add --agent --new-key-file "$T/agent2.key"
agent2=$(jq -r .added <<<"$OUT")
pub1=$(jq -r .repository_key.public "$REPO/keys/$agent_id")
pub2=$(jq -r .repository_key.public "$REPO/keys/$agent2")
assert_eq "$pub1" "$pub2" "repository public key"
CAIRN_PASSWORD='' expect_exit 0 cairn --repo "$REPO" --key-file "$T/agent2.key" backup "$T/old"
head -c 32 /dev/urandom | base64 >"$T/wrong.key"
CAIRN_PASSWORD='' expect_exit 12 cairn --repo "$REPO" --key-file "$T/wrong.key" backup "$T/old"
expect_exit 0 R restore latest --target "$T/out-old"
assert_file_same "$T/old/secret.txt" "$T/out-old$T/old/secret.txt"

step "forget + prune with the password keep what agents wrote readable"
expect_exit 0 R --json snapshots
first_snap=$(jq -r '.[0].id' <<<"$OUT")
expect_exit 0 R forget "${first_snap:0:8}" --prune --max-unused 0
expect_exit 0 R --json snapshots
assert_eq 3 "$(jq length <<<"$OUT")" "snapshots after forget"
expect_exit 0 R check --read-data
expect_exit 0 R restore "$snap" --target "$T/out2"
assert_same_content "$T/src" "$T/out2$T/src"
expect_exit 0 R restore latest --target "$T/out-old2"
assert_file_same "$T/old/secret.txt" "$T/out-old2$T/old/secret.txt"

step "the last agent key cannot be removed; one of two can"
expect_exit 0 R key remove "${agent_id:0:8}"
expect_exit 2 R key remove "${agent2:0:8}"
assert_contains "$ERR" "last agent key"
expect_exit 0 R check

step "a damaged agent pack is reported by check, naming the pack"
pack=$(find "$REPO/data" -type f | head -n1)
chmod u+w "$pack" 2>/dev/null || true
flip_byte "$pack" 10
expect_exit 1 R check --read-data
assert_contains "$OUT$ERR" "$(basename -- "$pack")"

step "rest: locations: plain HTTP needs --insecure-http, a missing server or service is an error"
port=$(free_port)
expect_exit 2 cairn --repo "rest:http://127.0.0.1:$port/shop" snapshots
assert_contains "$ERR" "--insecure-http"
expect_exit 2 cairn --repo "rest:https://127.0.0.1:$port" snapshots
assert_contains "$ERR" "service"
expect_exit 2 cairn --repo "rest:ftp://127.0.0.1:$port/shop" snapshots
CAIRN_TOKEN=secret-token-value CAIRN_REST_MAX_ATTEMPTS=2 CAIRN_REST_MAX_RETRY_SECONDS=1 \
  expect_exit 1 cairn --insecure-http --repo "rest:http://127.0.0.1:$port/shop" --key-file "$T/agent2.key" backup "$T/old"
assert_contains "$ERR" "127.0.0.1:$port"
assert_not_contains "$ERR$OUT" "secret-token-value"
CAIRN_TOKEN_FILE=$T/missing.token expect_exit 2 cairn --insecure-http --repo "rest:http://127.0.0.1:$port/shop" snapshots
assert_contains "$ERR" "CAIRN_TOKEN_FILE"

step "a policy backup (exec engine) with the agent key file as the service's key source"
printf 'dump of the orders database\n' >"$T/orders.dump"
cat >"$T/cairn.yaml" <<YAML
services:
  orders:
    owner: team-orders
    objectives: { rpo: 1h, rto: 4h }
    repository: { location: $REPO, key_file: $T/agent2.key }
    engine:
      type: exec
      command: [cat, $T/orders.dump]
      filename: orders.dump
    schedule: "0 * * * *"
    drill: { checks: ["exec: test -s ./orders.dump"] }
YAML
expect_exit 0 cairn --config "$T/cairn.yaml" policy validate
expect_exit 0 cairn --config "$T/cairn.yaml" backup --service orders
expect_exit 0 R dump latest:/orders.dump --service orders
assert_eq "dump of the orders database" "$OUT" "policy backup written by the agent"
sed -i "s|location: $REPO|location: rest:https://backup.internal:8443/orders|" "$T/cairn.yaml"
expect_exit 0 cairn --config "$T/cairn.yaml" policy validate
