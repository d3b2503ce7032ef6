# The S3 backend against a faulty server: s3rver behind tests/tools/fault_proxy.py.
#
# 1. 20 % of all requests get a fault (500, 503 SlowDown, 429 SlowDown,
#    connection reset, truncated answer, slow answer, hang): init, a backup
#    of a tree that makes several packs, a byte-exact restore and
#    check --read-data all succeed, and the proxy's log shows faults of
#    several kinds. Then half the uploads lose their answer after the
#    server stored the object; the retries meet a 412 and the backup succeeds.
# 2. 100 % of the requests fail (all of them, then only the pack uploads):
#    backup exits 1 within the retry budget, naming the object it gave up
#    on; no snapshot appears, no lock is left, and the repository - read
#    straight from s3rver - still passes check --read-data and restores the
#    earlier snapshot.
# In between, a backup with multipart uploads (5 MiB parts) at 20 % faults.
# The retry budget is shortened with CAIRN_S3_MAX_ATTEMPTS,
# CAIRN_S3_TIMEOUT_SECONDS and CAIRN_S3_MAX_RETRY_SECONDS (docs/storage.md).
# Skips (exit 0) when s3rver is not installed (scripts/install-s3rver).
# Usage: bash tests/e2e/test_s3_faults.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
S3RVER=${CAIRN_S3RVER:-$ROOT/tools/node_modules/.bin/s3rver}
PROXY=$ROOT/tests/tools/fault_proxy.py
if [[ ! -x $S3RVER ]]; then
  skip "*** s3rver not installed ($S3RVER): run scripts/install-s3rver to test the S3 backend ***"
  exit 0
fi
command -v python3 >/dev/null || fail "python3 is required (scripts/setup installs it)"

BUCKET=cairn-faults
S3DATA=$T/s3data
step "starting s3rver"
start_s3rver s3rver "$S3DATA" "$BUCKET"

# start_proxy NAME ARGS...: a fault proxy in front of s3rver; sets PROXY_PORT,
# PROXY_PID and FAULTS (its fault log, $T/NAME.faults).
PROXY_PID=''
start_proxy() {
  local name=$1
  shift
  FAULTS=$T/$name.faults
  python3 "$PROXY" --upstream "127.0.0.1:$S3PORT" --port-file "$T/$name.port" \
    --log "$FAULTS" --access-log "$T/$name.access" --slow-seconds 30 --hang-seconds 60 "$@" \
    >"$T/$name.proxy.log" 2>&1 &
  PROXY_PID=$!
  on_exit "kill $PROXY_PID 2>/dev/null; wait $PROXY_PID 2>/dev/null"
  for _ in $(seq 1 100); do
    [[ -s $T/$name.port ]] && break
    kill -0 "$PROXY_PID" 2>/dev/null || fail "fault proxy exited: $(cat "$T/$name.proxy.log")"
    sleep 0.1
  done
  PROXY_PORT=$(cat "$T/$name.port") || fail "fault proxy wrote no port"
  wait_port "$PROXY_PORT" "$PROXY_PID" "$T/$name.proxy.log"
}
stop_proxy() {
  kill "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
}
# "kind count" lines of a fault log.
fault_summary() { cut -f4 "$1" | sort | uniq -c | awk '{ printf "%s %s; ", $2, $1 }'; }

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION CAIRN_S3_CACERT
PREFIX=repo
DIRECT=s3:http://127.0.0.1:$S3PORT/$BUCKET/$PREFIX
# Straight to s3rver, default retry budget.
D() { cairn --insecure-http --repo "$DIRECT" "$@"; }
# Through the proxy, with a bounded run time even if cairn mishandles a fault.
P() { timeout 300 "$CAIRN_BIN" --no-progress --insecure-http --repo "s3:http://127.0.0.1:$PROXY_PORT/$BUCKET/$PREFIX" "$@"; }

step "bad retry settings are refused clearly"
CAIRN_S3_MAX_ATTEMPTS=lots expect_exit nonzero D snapshots
assert_contains "$ERR" "CAIRN_S3_MAX_ATTEMPTS='lots'"
CAIRN_S3_TIMEOUT_SECONDS=0 expect_exit nonzero D snapshots
assert_contains "$ERR" "CAIRN_S3_TIMEOUT_SECONDS"

# Small files and four 8 MiB ones (34 MB): with --compression off, at least
# three packs of at most 16 MiB.
SRC=$T/src
mkdir -p "$SRC/small/a" "$SRC/small/b" "$SRC/big"
for i in $(seq 1 30); do
  random_file "$SRC/small/$((i % 2 ? 1 : 0))$i" $((i * 3001))
done
for i in $(seq 1 10); do echo "text file $i" >"$SRC/small/a/t$i.txt"; done
for i in 1 2 3 4; do random_file "$SRC/big/b$i" $((8 * 1024 * 1024 + i * 12345)); done

# --- 1. 20 % faults of every kind ---------------------------------------------
# A fault costs at most one stall timeout (2 s) plus a short backoff; eight
# attempts make a request that fails every time (0.2^8) practically impossible.
export CAIRN_S3_MAX_ATTEMPTS=8 CAIRN_S3_TIMEOUT_SECONDS=2 CAIRN_S3_MAX_RETRY_SECONDS=10
start_proxy p20 --seed 20261126 --rate 0.2 --if-none-match

step "init through the proxy (20 % faults)"
expect_exit 0 P init --kdf-iterations 1 --kdf-memory 8

step "backup through the proxy"
expect_exit 0 P --compression off backup "$SRC"
expect_exit 0 D --json snapshots
assert_eq 1 "$(jq length <<<"$OUT")" "number of snapshots"
packs=$(find "$S3DATA/$BUCKET/$PREFIX/data" -name '*._S3rver_object' | wc -l)
((packs >= 3)) || fail "expected at least 3 packs, found $packs"

step "restore through the proxy"
expect_exit 0 P restore latest --target "$T/out"
assert_same_content "$SRC" "$T/out$SRC"

step "check --read-data through the proxy"
expect_exit 0 P check --read-data
stop_proxy

[[ -s $FAULTS ]] || fail "the proxy injected no fault"
echo "    faults injected: $(wc -l <"$FAULTS") of $(wc -l <"$T/p20.access") requests: $(fault_summary "$FAULTS")"
kinds=$(cut -f4 "$FAULTS" | sort -u | wc -l)
((kinds >= 4)) || fail "faults of only $kinds kind(s): $(fault_summary "$FAULTS")"
grep -q $'\tPUT\t.*/data/' "$T/p20.access" || fail "no pack upload went through the proxy"

# Uploads whose answer is lost after the server stored the object: the retry
# meets its own object, which the proxy (like AWS, unlike s3rver) answers
# with 412 to "If-None-Match: *"; cairn must see its own bytes (ETag) there.
step "backup while half the uploads lose their answer (412 on retry)"
random_file "$SRC/big/late" $((5 * 1024 * 1024))
start_proxy lost --seed 3 --rate 0.5 --kinds truncate,slow --match PUT --if-none-match
expect_exit 0 P --compression off backup "$SRC"
stop_proxy
echo "    faults: $(fault_summary "$FAULTS")"
grep -q $'\tPUT\t.*/data/' "$FAULTS" || fail "no pack upload lost its answer: $(cat "$FAULTS")"

# Answers cut right after the status line and a header look complete to
# libcurl (empty body, no Content-Length); cairn must retry them, not read an
# empty config or an empty listing.
step "reads whose answers are cut after the headers are retried"
start_proxy cut --seed 11 --rate 0.3 --kinds cut-headers --match GET
expect_exit 0 P snapshots
expect_exit 0 P check --read-data
stop_proxy
grep -q 'cut-headers' "$FAULTS" || fail "no answer was cut: $(cat "$FAULTS")"

# Objects above the multipart threshold go up in 5 MiB parts: a fault costs
# one part's retry, and a lost answer to the completion meets the finished
# object (404 NoSuchUpload or 412) and is recognised by its size.
step "multipart uploads through the proxy (20 % faults)"
random_file "$SRC/big/multi" $((12 * 1024 * 1024 + 333))
start_proxy mp --seed 5 --rate 0.2 --if-none-match
expect_exit 0 P --compression off --s3-multipart-threshold 5MiB --s3-part-size 5MiB backup "$SRC"
stop_proxy
echo "    faults: $(fault_summary "$FAULTS")"
posts=$(grep -c $'\tPOST\t.*/data/' "$T/mp.access" || true)
((posts >= 2)) || fail "no multipart upload went through the proxy ($posts POSTs)"
expect_exit 0 D restore latest --target "$T/out-mp" --verify
assert_same_content "$SRC" "$T/out-mp$SRC"
expect_exit 0 D check --read-data

# --- 2. 100 % faults ----------------------------------------------------------
# Three attempts, 2 s of backoff at most: a request gives up within ~10 s.
export CAIRN_S3_MAX_ATTEMPTS=3 CAIRN_S3_TIMEOUT_SECONDS=2 CAIRN_S3_MAX_RETRY_SECONDS=2
SRC2=$T/src2
mkdir -p "$SRC2"
random_file "$SRC2/new" $((3 * 1024 * 1024))
echo "more" >"$SRC2/more.txt"
no_locks() {
  local left
  left=$( (find "$S3DATA/$BUCKET/$PREFIX/locks" -name "*._S3rver_object" 2>/dev/null || true) | wc -l)
  ((left == 0)) || fail "$left lock(s) left in the repository after the failed backup"
}

step "every request fails: backup gives up with exit 1"
start_proxy p100 --seed 7 --rate 1
start=$SECONDS
expect_exit 1 P backup "$SRC2"
stop_proxy
echo "    stderr: $(head -c 400 "$ERR_FILE")"
echo "    took $((SECONDS - start))s; faults: $(fault_summary "$FAULTS")"
assert_contains "$ERR" "s3 "
assert_contains "$ERR" "$BUCKET/$PREFIX/"
assert_contains "$ERR" "gave up after 3 attempts"
((SECONDS - start < 60)) || fail "giving up took $((SECONDS - start))s"

step "every pack upload fails: backup gives up with exit 1, names the pack"
start_proxy p100put --seed 8 --rate 1 --match "PUT:/$BUCKET/$PREFIX/data/"
start=$SECONDS
expect_exit 1 P backup "$SRC2"
stop_proxy
echo "    stderr: $(head -c 400 "$ERR_FILE")"
echo "    took $((SECONDS - start))s; faults: $(fault_summary "$FAULTS")"
[[ -s $FAULTS ]] || fail "no pack upload reached the proxy"
assert_contains "$ERR" "PUT $BUCKET/$PREFIX/data/"
assert_contains "$ERR" "gave up after 3 attempts"
((SECONDS - start < 60)) || fail "giving up took $((SECONDS - start))s"

step "the repository, read straight from s3rver, is intact"
unset CAIRN_S3_MAX_ATTEMPTS CAIRN_S3_TIMEOUT_SECONDS CAIRN_S3_MAX_RETRY_SECONDS
no_locks
expect_exit 0 D --json snapshots
assert_eq 3 "$(jq length <<<"$OUT")" "number of snapshots after the failed backups"
expect_exit 0 D check --read-data
expect_exit 0 D restore latest --target "$T/out2"
assert_same_content "$SRC" "$T/out2$SRC"
