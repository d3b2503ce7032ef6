# The S3 backend end to end against a real s3rver: init, backup (a small tree
# and a 20 MiB random file), restore --verify, check --read-data, a second
# init refused, wrong credentials and a missing bucket reported clearly,
# init --create-bucket, credentials from a shared credentials file,
# virtual-host addressing, a pack changed in the store, a pack upload that
# keeps failing (backup fails naming it, no snapshot), and HTTPS with
# --cacert / --insecure-tls against a second s3rver with a test CA.
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

BUCKET=cairn-e2e
S3DATA=$T/s3data
step "starting s3rver"
start_s3rver s3rver "$S3DATA" "$BUCKET" --service-endpoint localhost
PORT=$S3PORT

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION CAIRN_S3_CACERT AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE
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
# Two uploads in flight at most (the 20 MiB file makes two packs).
expect_exit 0 R --s3-connections 2 backup "$SRC"
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
AWS_ACCESS_KEY_ID=NOT-A-KEY AWS_SECRET_ACCESS_KEY=TOPSECRET-e2e expect_exit 1 R snapshots
assert_contains "$ERR" "access denied"
assert_not_contains "$ERR$OUT" "TOPSECRET"
((SECONDS - start < 10)) || fail "wrong credentials took $((SECONDS - start))s (retried?)"

step "missing bucket named in the error, with the way out"
expect_exit 1 cairn --insecure-http --repo "s3:$ENDPOINT/no-such-bucket/x" init --kdf-iterations 1 --kdf-memory 8
assert_contains "$ERR" "bucket no-such-bucket does not exist"
assert_contains "$ERR" "--create-bucket"
[[ ! -e $S3DATA/no-such-bucket ]] || fail "init without --create-bucket made the bucket"

step "init --create-bucket"
NEWREPO=s3:$ENDPOINT/made-by-init/x
expect_exit 0 cairn --insecure-http --repo "$NEWREPO" init --create-bucket --kdf-iterations 1 --kdf-memory 8
[[ -d $S3DATA/made-by-init ]] || fail "bucket made-by-init was not created"
expect_exit 0 cairn --insecure-http --repo "$NEWREPO" snapshots
expect_exit nonzero cairn --insecure-http --repo "$NEWREPO" init --create-bucket --kdf-iterations 1 --kdf-memory 8
assert_contains "$ERR" "already exists"

step "virtual-host addressing (bucket in the host name)"
# s3rver takes "<bucket>.s3.localhost" as virtual-host style (--service-endpoint
# localhost); curl resolves *.localhost to the loopback address itself.
VREPO=s3:http://s3.localhost:$PORT/$BUCKET/some/prefix
if cairn --insecure-http --quiet --repo "$VREPO" --s3-virtual-host snapshots >/dev/null 2>&1; then
  expect_exit 0 cairn --insecure-http --repo "$VREPO" --s3-virtual-host --json snapshots
  assert_eq 1 "$(jq length <<<"$OUT")" "snapshots seen through virtual-host addressing (one kept by forget)"
else
  skip "this curl does not resolve *.localhost; virtual-host is covered by cairn_tests (CURLOPT_RESOLVE)"
fi
expect_exit 2 cairn --insecure-http --repo "$VREPO" --s3-virtual-host --s3-path-style snapshots

step "credentials from the shared credentials file and AWS_PROFILE"
mkdir -p "$T/home/.aws"
printf '[default]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n[other]\naws_access_key_id = NOT-A-KEY\naws_secret_access_key = x\n' \
  >"$T/home/.aws/credentials"
(
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  export HOME=$T/home
  expect_exit 0 R snapshots
  AWS_PROFILE=other expect_exit 1 R snapshots
  assert_contains "$ERR" "access denied"
  AWS_PROFILE=nope expect_exit 1 R snapshots
  assert_contains "$ERR" "$T/home/.aws/credentials has no profile [nope]"
)

step "plain HTTP is refused without --insecure-http"
expect_exit 2 cairn --repo "$REPO" snapshots
assert_contains "$ERR" "--insecure-http"

step "missing credentials"
AWS_ACCESS_KEY_ID='' expect_exit nonzero R snapshots
assert_contains "$ERR" "AWS_ACCESS_KEY_ID"

step "a pack changed in the store is named by check --read-data"
PACK=$(compgen -G "$S3DATA/$BUCKET/some/prefix/data/??/*._S3rver_object" | head -1)
PACK_ID=$(basename "$PACK" ._S3rver_object)
cp "$PACK" "$T/pack.orig"
printf '\xff\xfe\xfd' | dd of="$PACK" bs=1 seek=100 conv=notrunc status=none
expect_exit 1 R check --read-data
assert_contains "$OUT$ERR" "$PACK_ID"
cp "$T/pack.orig" "$PACK"
expect_exit 0 R check --read-data

step "wrong region: s3rver does not check it (documented); the request still works"
AWS_DEFAULT_REGION=xx-nowhere-1 expect_exit 0 R snapshots

step "a pack upload that keeps failing fails the backup, naming the pack; no snapshot"
FREPO=s3:$ENDPOINT/$BUCKET/failing
expect_exit 0 cairn --insecure-http --repo "$FREPO" init --kdf-iterations 1 --kdf-memory 8
# A plain file where s3rver needs the folder data/ makes every pack PUT fail
# with a 500 (retried with backoff, then given up).
mkdir -p "$S3DATA/$BUCKET/failing"
: >"$S3DATA/$BUCKET/failing/data"
expect_exit 1 cairn --insecure-http --repo "$FREPO" --s3-connections 4 backup "$SRC"
assert_contains "$ERR" "storing pack "
assert_contains "$ERR" "gave up after"
rm -f "$S3DATA/$BUCKET/failing/data"
expect_exit 0 cairn --insecure-http --repo "$FREPO" --json snapshots
assert_eq 0 "$(jq length <<<"$OUT")" "snapshots after a failed upload"
expect_exit 0 cairn --insecure-http --repo "$FREPO" check
expect_exit 0 cairn --insecure-http --repo "$FREPO" backup "$SRC"
expect_exit 0 cairn --insecure-http --repo "$FREPO" check --read-data

step "HTTPS: a second s3rver with a test CA"
CERTS=$T/certs
make_test_ca "$CERTS"
start_s3rver s3rver-tls "$T/s3tls" "$BUCKET" --key "$CERTS/server.key" --cert "$CERTS/server.pem"
TPORT=$S3PORT
TREPO=s3:https://127.0.0.1:$TPORT/$BUCKET/tls

step "HTTPS with --cacert"
expect_exit 0 cairn --repo "$TREPO" --cacert "$CERTS/ca.pem" init --kdf-iterations 1 --kdf-memory 8
expect_exit 0 cairn --repo "$TREPO" --cacert "$CERTS/ca.pem" backup "$SRC/sub"
expect_exit 0 cairn --repo "$TREPO" --cacert "$CERTS/ca.pem" check --read-data
CAIRN_S3_CACERT=$CERTS/ca.pem expect_exit 0 cairn --repo "$TREPO" snapshots
assert_not_contains "$ERR" "WARNING"

step "HTTPS with an untrusted certificate: refused at once, naming --cacert"
start=$SECONDS
expect_exit 1 cairn --repo "$TREPO" snapshots
assert_contains "$ERR" "certificate"
assert_contains "$ERR" "--cacert"
assert_not_contains "$ERR" "gave up after"
((SECONDS - start < 5)) || fail "untrusted certificate took $((SECONDS - start))s (retried?)"

step "HTTPS with --insecure-tls: works, warns loudly (even with --quiet)"
expect_exit 0 cairn --repo "$TREPO" --insecure-tls --quiet snapshots
assert_contains "$ERR" "WARNING: --insecure-tls"
