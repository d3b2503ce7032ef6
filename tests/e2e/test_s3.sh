# The S3 backend end to end against a real s3rver: init, backup (a small tree
# and a 20 MiB random file), restore --verify, check --read-data, a second
# init refused, wrong credentials and a missing bucket reported clearly.
# Skips (exit 0) when s3rver is not installed (scripts/install-s3rver).
# Usage: bash tests/e2e/test_s3.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
S3RVER=${CAIRN_S3RVER:-$ROOT/tools/node_modules/.bin/s3rver}
if [[ ! -x $S3RVER ]]; then
  skip "*** s3rver not installed ($S3RVER): run scripts/install-s3rver to test the S3 backend ***"
  exit 0
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

BUCKET=cairn-e2e
S3DATA=$T/s3data
mkdir -p "$S3DATA"
step "starting s3rver"
PORT=$(free_port)
# s3rver's continuation tokens use DES, which OpenSSL 3 keeps in its legacy provider.
NODE_OPTIONS="--openssl-legacy-provider ${NODE_OPTIONS:-}" \
  "$S3RVER" -d "$S3DATA" -a 127.0.0.1 -p "$PORT" --configure-bucket "$BUCKET" \
  >"$T/s3rver.log" 2>&1 &
S3PID=$!
on_exit "kill $S3PID 2>/dev/null; wait $S3PID 2>/dev/null"
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$S3PID" 2>/dev/null || fail "s3rver exited: $(tail -c 2000 "$T/s3rver.log")"
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || fail "s3rver did not listen on $PORT"

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION CAIRN_S3_CACERT
ENDPOINT=http://127.0.0.1:$PORT
REPO=s3:$ENDPOINT/$BUCKET/some/prefix
R() { cairn --insecure-http --repo "$REPO" "$@"; }

step "init"
expect_exit 0 R init --kdf-iterations 1 --kdf-memory 8
[[ -f $S3DATA/$BUCKET/some/prefix/config._S3rver_object ]] ||
  fail "config is not at some/prefix/config in the bucket: $(cd "$S3DATA" && find . | head -20)"
expect_exit nonzero R init --kdf-iterations 1 --kdf-memory 8
assert_contains "$ERR" "already exists"

step "backup"
SRC=$T/src
mkdir -p "$SRC/sub/deeper" "$SRC/empty"
echo hello >"$SRC/hello.txt"
printf 'x' >"$SRC/one"
: >"$SRC/zero"
random_file "$SRC/sub/f100k" $((100 * 1024))
random_file "$SRC/sub/deeper/f20m" $((20 * 1024 * 1024))
ln -s ../hello.txt "$SRC/sub/link"
expect_exit 0 R backup "$SRC"
compgen -G "$S3DATA/$BUCKET/some/prefix/data/??/*._S3rver_object" >/dev/null ||
  fail "no pack under some/prefix/data/XX/"
expect_exit 0 R --json snapshots
assert_eq 1 "$(jq length <<<"$OUT")" "number of snapshots"

step "restore --verify"
expect_exit 0 R restore latest --target "$T/out" --verify
assert_same_content "$SRC" "$T/out$SRC"

step "check --read-data"
expect_exit 0 R check --read-data

step "a second backup of the unchanged tree uploads no file data"
expect_exit 0 R backup "$SRC"
assert_contains "$OUT" "files: 0 new, 0 changed, 5 unmodified"
expect_exit 0 R --json snapshots
assert_eq 2 "$(jq length <<<"$OUT")" "number of snapshots"

step "two-phase prune: a marker under maintenance/, swept by the next run"
expect_exit 0 R forget --keep-last 1
expect_exit 0 R --json prune
assert_eq true "$(jq .marked <<<"$OUT")" "first prune marks"
compgen -G "$S3DATA/$BUCKET/some/prefix/maintenance/*._S3rver_object" >/dev/null ||
  fail "no marker under some/prefix/maintenance/"
expect_exit 0 R --json prune
assert_eq true "$(jq .swept <<<"$OUT")" "second prune sweeps"
expect_exit 0 R check
expect_exit 0 R restore latest --target "$T/out-pruned" --verify
assert_same_content "$SRC" "$T/out-pruned$SRC"

step "wrong access key id: refused quickly, secret not echoed"
start=$SECONDS
AWS_ACCESS_KEY_ID=NOT-A-KEY AWS_SECRET_ACCESS_KEY=TOPSECRET-e2e expect_exit nonzero R snapshots
assert_contains "$ERR" "access denied"
assert_not_contains "$ERR$OUT" "TOPSECRET"
((SECONDS - start < 10)) || fail "wrong credentials took $((SECONDS - start))s (retried?)"

step "missing bucket named in the error"
expect_exit nonzero cairn --insecure-http --repo "s3:$ENDPOINT/no-such-bucket/x" init --kdf-iterations 1 --kdf-memory 8
assert_contains "$ERR" "bucket no-such-bucket does not exist"

step "plain HTTP is refused without --insecure-http"
expect_exit 2 cairn --repo "$REPO" snapshots
assert_contains "$ERR" "--insecure-http"

step "missing credentials"
AWS_ACCESS_KEY_ID='' expect_exit nonzero R snapshots
assert_contains "$ERR" "AWS_ACCESS_KEY_ID"
