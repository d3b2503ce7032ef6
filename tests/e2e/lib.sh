# Tiny assertion library for cairn's end-to-end tests.
#
# Usage, at the top of tests/e2e/test_X.sh:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"   # $1 = path to the cairn binary
#
# Provides:
#   $CAIRN_BIN          absolute path of the binary under test
#   $T                  a private temp dir, removed on exit (see on_exit for more cleanup)
#   cairn ARGS...       runs the binary with --no-progress
#   new_repo DIR        creates a repository with cheap KDF settings
#   expect_exit CODE cmd...   runs cmd, fails unless it exits with CODE
#                       (CODE "nonzero" accepts any non-zero exit). Its stdout and
#                       stderr are kept in $OUT_FILE / $ERR_FILE (and $OUT / $ERR).
#   assert_same_content A B   same names, file contents and symlink targets
#   assert_same_tree A B      contents, types, modes, sizes, link counts, mtimes
#                       (to the nanosecond) and symlink targets of two trees are equal
#   assert_eq / assert_contains / assert_not_contains / assert_file_same / fail / skip
#   json_get JSONFILE JQ_EXPR
#   rm_tree DIR...      rm -rf, also through read-only directories
#   flip_byte FILE OFFSET     inverts one byte (negative OFFSET: from the end)
#   on_exit 'shell code'      extra cleanup, run (in reverse order) before $T is removed
# Set CAIRN_E2E_KEEP=1 to keep $T for debugging, CAIRN_E2E_VERBOSE=1 to see
# the exit code and stderr of every expect_exit.
set -euo pipefail
export LC_ALL=C

CAIRN_BIN=${1:?usage: bash $0 /path/to/cairn}
CAIRN_BIN=$(readlink -f -- "$CAIRN_BIN")
[[ -x $CAIRN_BIN ]] || { echo "FAIL: $CAIRN_BIN is not an executable" >&2; exit 1; }

TEST_NAME=$(basename -- "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-$TEST_NAME.XXXXXX")
export CAIRN_PASSWORD="e2e correct horse"
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND

_exit_hooks=()
on_exit() { _exit_hooks+=("$1"); }
_run_exit_hooks() {
  local rc=$? i
  set +e
  for ((i = ${#_exit_hooks[@]} - 1; i >= 0; i--)); do eval "${_exit_hooks[i]}"; done
  # Restored trees may contain 0000 dirs / files; make sure rm can get through.
  if [[ ${CAIRN_E2E_KEEP:-} == 1 ]]; then
    echo "keeping $T (CAIRN_E2E_KEEP=1)"
  else
    chmod -R u+rwX -- "$T" 2>/dev/null
    rm -rf -- "$T"
  fi
  if ((rc == 0)); then
    echo "PASS: $TEST_NAME (${SECONDS}s)"
  else
    echo "FAIL: $TEST_NAME (exit $rc after ${SECONDS}s)" >&2
  fi
  exit "$rc"
}
trap _run_exit_hooks EXIT
trap 'exit 130' INT TERM

_where() {
  # Caller of the assertion: "test_x.sh:123".
  local i=1
  while [[ ${FUNCNAME[i]:-} == @(assert_*|expect_exit|fail|skip|_where|json_*) ]]; do ((i++)); done
  echo "$(basename -- "${BASH_SOURCE[i]:-?}"):${BASH_LINENO[i - 1]:-?}"
}

fail() {
  echo "FAIL [$(_where)]: $*" >&2
  exit 1
}

skip() { echo "SKIP [$(_where)]: $*"; }

step() { echo "--- $* (${SECONDS}s)"; }

cairn() { "$CAIRN_BIN" --no-progress "$@"; }

free_port() {  # a TCP port on 127.0.0.1 that nothing listens on
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {  # wait_port PORT PID LOG: until PORT listens; fails if PID exits
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || fail "server exited: $(tail -c 2000 "$3")"
    sleep 0.1
  done
  fail "nothing listens on $1: $(tail -c 2000 "$3")"
}

# start_s3rver NAME DATADIR BUCKET [s3rver args...]: npm s3rver ($S3RVER) on
# a port it picks; sets S3PORT and S3PID; stopped on exit; log in $T/NAME.log.
start_s3rver() {
  local name=$1 dir=$2 bucket=$3
  shift 3
  mkdir -p "$dir"
  # s3rver's continuation tokens use DES, which OpenSSL 3 keeps in its legacy
  # provider. The preload makes a PUT answer only once the object is on disk
  # (tests/tools/s3rver_durable_put.js).
  NODE_OPTIONS="--openssl-legacy-provider --require $(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../tools" && pwd)/s3rver_durable_put.js ${NODE_OPTIONS:-}" \
    "$S3RVER" -d "$dir" -a 127.0.0.1 -p 0 --configure-bucket "$bucket" "$@" >"$T/$name.log" 2>&1 &
  S3PID=$!
  on_exit "kill $S3PID 2>/dev/null; wait $S3PID 2>/dev/null"
  # It binds a port of its own choosing and logs it: a port picked here could
  # be taken by a parallel test's server first.
  S3PORT=''
  for _ in $(seq 1 300); do
    S3PORT=$(sed -n 's/^S3rver listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/$name.log" 2>/dev/null || true)
    # Only a whole line: tail -c 1 is the newline, which $(...) strips.
    [[ -n $S3PORT && -z $(tail -c 1 "$T/$name.log") ]] && break
    kill -0 "$S3PID" 2>/dev/null || fail "s3rver exited: $(tail -c 2000 "$T/$name.log")"
    sleep 0.1
  done
  [[ -n $S3PORT ]] || fail "s3rver logged no port: $(tail -c 2000 "$T/$name.log")"
  wait_port "$S3PORT" "$S3PID" "$T/$name.log"
}

# make_test_ca DIR: a throwaway CA (DIR/ca.pem) and a server certificate for
# 127.0.0.1/localhost signed by it (DIR/server.pem, DIR/server.key).
make_test_ca() {
  mkdir -p "$1"
  (
    cd "$1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=cairn e2e CA' \
      -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile ext.cnf -out server.pem
  ) >"$T/openssl.log" 2>&1 || fail "openssl: $(cat "$T/openssl.log")"
}

new_repo() {
  cairn --repo "$1" --quiet init --kdf-iterations 1 --kdf-memory 8 >/dev/null ||
    fail "cairn init $1 failed"
}

OUT_FILE=$T/.last.out
ERR_FILE=$T/.last.err
# shellcheck disable=SC2034 # OUT and ERR are for the tests
OUT='' ERR=''

expect_exit() {
  local want=$1 rc=0
  shift
  "$@" >"$OUT_FILE" 2>"$ERR_FILE" || rc=$?
  # shellcheck disable=SC2034
  OUT=$(tr -d '\0' <"$OUT_FILE")
  # shellcheck disable=SC2034
  ERR=$(tr -d '\0' <"$ERR_FILE")
  if [[ ${CAIRN_E2E_VERBOSE:-} == 1 ]]; then
    echo "+ [exit $rc] $*"
    head -c 2000 "$ERR_FILE" | sed 's/^/  stderr: /'
  fi
  if [[ $want == nonzero ]]; then
    ((rc != 0)) && return 0
  elif ((rc == want)); then
    return 0
  fi
  {
    echo "FAIL [$(_where)]: expected exit $want, got $rc from: $*"
    echo "  stdout (last 20 lines):"
    tail -n 20 -- "$OUT_FILE" | sed 's/^/    /'
    echo "  stderr (last 20 lines):"
    tail -n 20 -- "$ERR_FILE" | sed 's/^/    /'
  } >&2
  exit 1
}

assert_eq() {  # assert_eq EXPECTED ACTUAL [what]
  [[ $1 == "$2" ]] || fail "${3:-value}: expected '$1', got '$2'"
}

assert_contains() {  # assert_contains HAYSTACK NEEDLE [what]
  [[ $1 == *"$2"* ]] || fail "${3:-output} does not contain '$2'; it was:"$'\n'"$1"
}

assert_not_contains() {
  [[ $1 != *"$2"* ]] || fail "${3:-output} unexpectedly contains '$2'; it was:"$'\n'"$1"
}

assert_file_same() {  # assert_file_same A B
  [[ -f $1 ]] || fail "missing file: $1"
  [[ -f $2 ]] || fail "missing file: $2"
  cmp -s -- "$1" "$2" || fail "files differ: $1 vs $2 ($(cmp -- "$1" "$2" 2>&1 | head -1))"
}

json_get() {  # json_get FILE EXPR: prints the jq result (raw)
  if command -v jq >/dev/null 2>&1; then
    jq -r "$2" <"$1" || fail "jq '$2' failed on $1: $(head -c 500 "$1")"
  else
    fail "jq is required for this test"
  fi
}

# One NUL-separated record per entry below $1 (the root itself excluded):
# type, mode, size (files), link count (files), mtime with nanoseconds (not
# for symlinks), path and symlink target. Sorted, so two listings compare with cmp.
tree_listing() {
  (cd -- "$1" && find . -mindepth 1 \
    \( -type l -printf 'l %P -> %l\0' \) -o \
    \( -type d -printf 'd %m %TY-%Tm-%Td %TT %P\0' \) -o \
    \( -type f -printf 'f %m %s n=%n %TY-%Tm-%Td %TT %P\0' \) -o \
    -printf '%y %m %P\0') | sort -z
}

# Same names, file contents and symlink targets (no metadata).
assert_same_content() {  # assert_same_content EXPECTED ACTUAL
  local a=$1 b=$2
  [[ -d $a ]] || fail "$a is not a directory"
  [[ -d $b ]] || fail "$b is not a directory"
  # diff reports two fifos (devices, sockets) as different even when both are
  # of the same type; their type and mode are compared by the listing below.
  diff -r --no-dereference -- "$a" "$b" 2>&1 |
    grep -vE '^File .* is a (fifo|socket|character special file|block special file) while file .* is a \1$' \
      >"$T/.tree.diff" || true
  if [[ -s $T/.tree.diff ]]; then
    fail "trees differ in content ($a vs $b):"$'\n'"$(head -n 30 "$T/.tree.diff")"
  fi
}

# Same content (assert_same_content) and metadata (tree_listing).
assert_same_tree() {  # assert_same_tree EXPECTED ACTUAL
  local a=$1 b=$2
  assert_same_content "$a" "$b"
  tree_listing "$a" >"$T/.tree.a"
  tree_listing "$b" >"$T/.tree.b"
  if ! cmp -s "$T/.tree.a" "$T/.tree.b"; then
    diff <(tr '\0' '\n' <"$T/.tree.a") <(tr '\0' '\n' <"$T/.tree.b") | head -n 30 >"$T/.tree.diff" || true
    fail "trees differ in metadata ($a vs $b; < expected, > actual):"$'\n'"$(cat "$T/.tree.diff")"
  fi
}

# rm -rf that also gets through read-only directories of a restore.
rm_tree() {
  local d
  for d in "$@"; do
    [[ -e $d || -L $d ]] || continue
    chmod -R u+rwX -- "$d" 2>/dev/null || true
    rm -rf -- "$d"
  done
}

# Number of snapshots in a repository.
snapshot_count() {
  cairn --repo "$1" --json snapshots | jq length
}

# sha256 of every file in a repository (path + hash), for "unchanged" checks.
repo_fingerprint() {
  (cd -- "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

# Random bytes: random_file PATH BYTES
random_file() {
  head -c "$2" /dev/urandom >"$1"
}

# Flips every bit of the byte at OFFSET (negative: from the end) of FILE.
flip_byte() {
  local f=$1 off=$2 size b
  size=$(stat -c %s "$f")
  ((off < 0)) && off=$((size + off))
  b=$(od -An -tu1 -j "$off" -N1 -- "$f" | tr -d ' ')
  [[ -n $b ]] || fail "flip_byte: $f has no byte at $off"
  chmod u+w -- "$f"
  # shellcheck disable=SC2059 # the format is the octal escape of one byte
  printf "\\$(printf '%03o' $((b ^ 0xff)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
