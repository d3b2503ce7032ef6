#!/usr/bin/env bash
# bench/compare.sh: cairn vs restic vs borg on one machine, one corpus, one run.
#
# Steps per tool (fresh repository each time):
#   init              create the repository (cairn: argon2id tuned to ~0.5 s)
#   1 backup_full     first backup of the corpus, page cache dropped first (cold)
#   2 backup_unchanged  second backup, nothing changed (warm caches)
#   3 backup_one_change third backup after 4 KiB of one mid-size file changed
#   4 restore_full    restore the latest snapshot into an empty folder (cold)
#   5 check_read_data full check reading every byte of the repository (cold)
#
# Every step is timed with /usr/bin/time (wall seconds, peak RSS, CPU seconds;
# with --s3 also s3rver's CPU seconds during the step). The restored
# tree is compared with the corpus (diff -r) after every restore; a difference
# fails the run. See bench/README.md.
#
# Options:
#   --s3             repositories in S3 buckets on a local s3rver (loopback,
#                    HTTPS with a throw-away certificate, its own data folder in
#                    $BENCH_DIR/work) instead of local folders; cairn and restic
#                    only (borg has no S3). Results go to results-s3.{md,json}.
#   --corpus DIR     use DIR as the corpus as it is (no build, no cap, no
#                    stamp); step 3 changes one of its files and puts it back
#
# Environment:
#   BENCH_DIR        work folder (default /var/tmp/cairn-bench); the corpus is kept
#                    there between runs, repositories are removed
#   BENCH_CORPUS_MB  corpus size cap in MB of 10^6 bytes (default 2000)
#   CAIRN            cairn binary (default <repo>/build/release/cairn, built if missing)
#   TOOLS            tools to run, in order (default "cairn restic borg"; with
#                    --s3 "cairn restic")
#   BENCH_PASSWORD   repository password for all tools (default: a fixed string)
# shellcheck disable=SC2016,SC2054  # backticks are Markdown; zstd,3 is one argument
set -euo pipefail

S3=0
CORPUS_ARG=''
while (($#)); do
  case $1 in
    --s3) S3=1 ;;
    --corpus) [[ $# -ge 2 ]] || { echo "compare.sh: --corpus needs a folder" >&2; exit 2; }; CORPUS_ARG=$2; shift ;;
    --corpus=*) CORPUS_ARG=${1#--corpus=} ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1' (--s3, --corpus DIR, --help)" >&2; exit 2 ;;
  esac
  shift
done

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/cairn-bench}
BENCH_CORPUS_MB=${BENCH_CORPUS_MB:-2000}
CAIRN=${CAIRN:-$ROOT/build/release/cairn}
if ((S3)); then TOOLS=${TOOLS:-"cairn restic"}; else TOOLS=${TOOLS:-"cairn restic borg"}; fi
PASSWORD=${BENCH_PASSWORD:-cairn-bench-not-a-secret}
CORPUS_SOURCES=(/usr/lib/x86_64-linux-gnu /usr/share /usr/include)

STEPS=(init backup_full backup_unchanged backup_one_change restore_full check_read_data)
declare -A STEP_LABEL=(
  [init]="init (not in total)"
  [backup_full]="1 full backup (cold)"
  [backup_unchanged]="2 unchanged re-backup (warm)"
  [backup_one_change]="3 one-file-change re-backup"
  [restore_full]="4 full restore (cold)"
  [check_read_data]="5 check, read all data (cold)"
)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\n!!!!! compare.sh: %s\n\n' "$*" >&2; exit 1; }

if ! [[ $BENCH_CORPUS_MB =~ ^[0-9]+$ ]] || ((BENCH_CORPUS_MB == 0)); then
  die "BENCH_CORPUS_MB must be a positive integer"
fi
read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
  case $t in cairn | restic | borg) ;; *) die "unknown tool '$t' in TOOLS (cairn, restic, borg)" ;; esac
  if ((S3)) && [[ $t == borg ]]; then die "borg has no S3 backend: TOOLS for --s3 are cairn and restic"; fi
done
((${#TOOL_LIST[@]} > 0)) || die "TOOLS is empty"
has_tool() { local t; for t in "${TOOL_LIST[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- prerequisites
apt_install() {
  if [[ $(id -u) -ne 0 ]]; then die "missing $* and not root: install it (apt-get install -y $*)"; fi
  log "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null; } ||
    die "apt-get install $* failed"
}
[[ -x /usr/bin/time ]] || apt_install time
if has_tool restic && ! command -v restic >/dev/null; then apt_install restic; fi
if has_tool borg && ! command -v borg >/dev/null; then apt_install borgbackup; fi
if ! command -v diff >/dev/null; then apt_install diffutils; fi
S3RVER=${CAIRN_S3RVER:-$ROOT/tools/node_modules/.bin/s3rver}
if ((S3)); then
  [[ -x $S3RVER ]] || die "s3rver not found at $S3RVER: run scripts/install-s3rver (or set CAIRN_S3RVER)"
  command -v python3 >/dev/null || apt_install python3
fi
if has_tool cairn && [[ ! -x $CAIRN ]]; then
  log "building cairn ($CAIRN missing)"
  (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build --preset release --target cairn) ||
    die "building cairn failed"
  [[ -x $CAIRN ]] || die "cairn binary $CAIRN still missing after the build"
fi

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
exec 9>"$BENCH_DIR/.lock"
flock -n 9 || die "another compare.sh is running on $BENCH_DIR"

CORPUS=$BENCH_DIR/corpus
STAMP=$BENCH_DIR/corpus.stamp
CHANGE_ORIG=$BENCH_DIR/change-file.orig
if [[ -n $CORPUS_ARG ]]; then
  [[ -d $CORPUS_ARG ]] || die "--corpus $CORPUS_ARG is not a folder"
  CORPUS=$(cd "$CORPUS_ARG" && pwd)
  STAMP=$BENCH_DIR/corpus-arg.stamp
  CHANGE_ORIG=$BENCH_DIR/corpus-arg.change-file.orig
fi
LOGS=$BENCH_DIR/logs
WORK=$BENCH_DIR/work
rm -rf "$LOGS" "$WORK"
mkdir -p "$LOGS" "$WORK"

# Run a private copy of cairn: others may rebuild build/release/cairn while we run.
if has_tool cairn; then
  cp "$CAIRN" "$WORK/cairn"
  CAIRN_SHA=$(sha256sum "$WORK/cairn" | cut -c1-16)
  CAIRN_ORIG=$CAIRN
  CAIRN=$WORK/cairn
fi

# ---------------------------------------------------------------- corpus
# Built once and reused while the stamp matches. Whole directories are copied
# with cp -a, then, if over the cap, files are removed in a pseudo-random but
# fixed order (sort -R with a constant random source) until the rest fits.
# The file changed in step 3 is saved pristine and put back before each tool.
stamp_text() {
  printf 'cap_mb=%s\nsources=%s\nformat=1\n' "$BENCH_CORPUS_MB" "${CORPUS_SOURCES[*]}"
}
build_corpus() {
  local tmp=$BENCH_DIR/corpus.tmp cap=$((BENCH_CORPUS_MB * 1000000)) src total
  log "building corpus in $CORPUS (cap $BENCH_CORPUS_MB MB); this is done once"
  rm -rf "$tmp" "$CORPUS" "$STAMP" "$CHANGE_ORIG"
  mkdir -p "$tmp"
  for src in "${CORPUS_SOURCES[@]}"; do
    [[ -d $src ]] || { log "warning: $src missing, skipped"; continue; }
    cp -a "$src" "$tmp/" 2>>"$LOGS/corpus-cp.err" || log "warning: cp -a $src reported errors (see $LOGS/corpus-cp.err)"
  done
  chmod -R u+rwX "$tmp"
  # Sockets, fifos and devices have no place in a data corpus.
  find "$tmp" ! -type f ! -type d ! -type l -delete
  total=$(find "$tmp" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
  if ((total > cap)); then
    log "trimming corpus from $((total / 1000000)) MB to $BENCH_CORPUS_MB MB"
    head -c 1048576 /dev/zero | tr '\0' 'c' >"$BENCH_DIR/.sort-seed"
    (cd "$tmp" && find . -type f -printf '%s\t%P\n' |
      LC_ALL=C sort -R --random-source="$BENCH_DIR/.sort-seed" -t $'\t' -k2 |
      awk -F '\t' -v cap="$cap" '{ if (kept + $1 <= cap) kept += $1; else print substr($0, index($0, "\t") + 1) }' |
      xargs -r -d '\n' rm -f --)
    find "$tmp" -mindepth 1 -type d -empty -delete
  fi
  mv "$tmp" "$CORPUS"
  local change
  change=$(pick_change_file)
  [[ -n $change ]] || die "no mid-size file (256 KiB to 4 MiB) in the corpus for step 3"
  cp -a "$CORPUS/$change" "$CHANGE_ORIG"
  { stamp_text; printf 'change_file=%s\n' "$change"; } >"$STAMP"
}
pick_change_file() {
  # The middle one (by name) of the single-link files between 256 KiB and 4 MiB.
  local list n
  list=$(cd "$CORPUS" && find . -type f -links 1 -size +256k -size -4096k -printf '%P\n' | LC_ALL=C sort)
  n=$(printf '%s\n' "$list" | grep -c . || true)
  ((n > 0)) || return 0
  printf '%s\n' "$list" | sed -n "$(((n + 1) / 2))p"
}
if [[ -n $CORPUS_ARG ]]; then
  # A stamp left by an interrupted run names the file it may have changed.
  if [[ -f $STAMP && -f $CHANGE_ORIG ]] && [[ $(sed -n 's/^corpus=//p' "$STAMP") == "$CORPUS" ]]; then
    log "putting back $(sed -n 's/^change_file=//p' "$STAMP") from an earlier run"
  else
    change=$(pick_change_file)
    [[ -n $change ]] || die "no mid-size file (256 KiB to 4 MiB) in $CORPUS for step 3"
    cp -a "$CORPUS/$change" "$CHANGE_ORIG"
    printf 'corpus=%s\nchange_file=%s\n' "$CORPUS" "$change" >"$STAMP"
  fi
  BENCH_CORPUS_MB=none
elif [[ -d $CORPUS && -f $STAMP && -f $CHANGE_ORIG ]] && [[ $(grep -v '^change_file=' "$STAMP") == "$(stamp_text)" ]]; then
  log "reusing corpus $CORPUS"
else
  build_corpus
fi
CHANGE_FILE=$(sed -n 's/^change_file=//p' "$STAMP")
[[ -f $CORPUS/$CHANGE_FILE ]] || die "corpus is missing $CHANGE_FILE; remove $STAMP to rebuild it"
reset_change_file() { cp -a "$CHANGE_ORIG" "$CORPUS/$CHANGE_FILE"; }
modify_change_file() {
  local size
  size=$(stat -c %s "$CORPUS/$CHANGE_FILE")
  head -c 4096 /dev/zero | tr '\0' 'M' |
    dd of="$CORPUS/$CHANGE_FILE" bs=4096 seek=$((size / 2 / 4096)) conv=notrunc status=none
  touch "$CORPUS/$CHANGE_FILE"
}
reset_change_file
CORPUS_BYTES=$(find "$CORPUS" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)
CORPUS_DIRS=$(find "$CORPUS" -type d | wc -l)
CORPUS_LINKS=$(find "$CORPUS" -type l | wc -l)
log "corpus: $((CORPUS_BYTES / 1000000)) MB, $CORPUS_FILES files, $CORPUS_DIRS dirs, $CORPUS_LINKS symlinks; step 3 changes $CHANGE_FILE"

# ---------------------------------------------------------------- measuring
CACHES_DROPPED=no
drop_caches() {
  sync
  if { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then CACHES_DROPPED=yes; fi
}
load1() { cut -d' ' -f1 /proc/loadavg; }

declare -A SECS RSS CPU S3CPU RC LOAD REPO_FULL REPO_FINAL VERIFIED META_DIFFS
CLK_TCK=$(getconf CLK_TCK)
# CPU seconds s3rver has used so far (user + system); nothing without --s3.
s3rver_cpu() {
  [[ -n ${S3PID-} && -r /proc/$S3PID/stat ]] || return 0
  awk -v hz="$CLK_TCK" '{ print ($14 + $15) / hz }' "/proc/$S3PID/stat"
}
FAILURES=()

# run_step TOOL STEP COLD(0/1) CMD...: times CMD; returns its exit status.
run_step() {
  local tool=$1 step=$2 cold=$3
  shift 3
  local out=$LOGS/$tool-$step.out err=$LOGS/$tool-$step.err tf=$LOGS/$tool-$step.time rc=0
  if ((cold)); then drop_caches; fi
  LOAD[$tool,$step]=$(load1)
  printf '%q ' "$@" >"$LOGS/$tool-$step.cmd"
  log "$tool: ${STEP_LABEL[$step]}"
  local s3_before s3_after
  s3_before=$(s3rver_cpu)
  /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$out" 2>"$err" || rc=$?
  s3_after=$(s3rver_cpu)
  local e m u sy
  read -r e m u sy < <(tail -n 1 "$tf")
  SECS[$tool,$step]=$e
  RSS[$tool,$step]=$m
  CPU[$tool,$step]=$(awk -v u="$u" -v s="$sy" 'BEGIN { print u + s }')
  if [[ -n $s3_before && -n $s3_after ]]; then
    S3CPU[$tool,$step]=$(awk -v a="$s3_before" -v b="$s3_after" 'BEGIN { print b - a }')
  fi
  RC[$tool,$step]=$rc
  # borg exits 1 for warnings only; everything else non-zero is an error.
  if ((rc != 0)) && ! [[ $tool == borg && $rc == 1 ]]; then
    printf '\n!!!!! %s %s FAILED with exit status %s\n!!!!! command: %s\n!!!!! stderr (%s):\n' \
      "$tool" "$step" "$rc" "$(cat "$LOGS/$tool-$step.cmd")" "$err" >&2
    tail -n 40 "$err" >&2
    printf '\n' >&2
    FAILURES+=("$tool $step: exit $rc: $(tail -n 3 "$err" | tr '\n' ' ')")
    return 1
  fi
  log "$tool: ${STEP_LABEL[$step]}: ${SECS[$tool,$step]} s, $((RSS[$tool,$step] / 1024)) MB peak RSS"
  return 0
}

# ---------------------------------------------------------------- S3 (--s3)
# One s3rver for the run, data in $WORK/s3data, a bucket per tool. HTTPS: over
# plain HTTP restic (minio-go) signs uploads in aws-chunked streaming form,
# which s3rver stores verbatim (chunk headers and all), so restic's repository
# would be unreadable. Both tools trust the run's self-signed certificate.
S3PID=''
S3DATA=$WORK/s3data
start_s3rver() {
  S3PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$S3DATA"
  S3CERT=$WORK/s3-cert.pem
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/s3-key.pem" -out "$S3CERT" \
    >"$LOGS/openssl.log" 2>&1 || die "openssl could not make a test certificate: $(cat "$LOGS/openssl.log")"
  log "starting s3rver on https://127.0.0.1:$S3PORT (data in $S3DATA)"
  # s3rver's continuation tokens use DES, which OpenSSL 3 keeps in its legacy provider.
  # The preload makes a PUT answer only once the object is on disk (as S3 does).
  NODE_OPTIONS="--openssl-legacy-provider --require $ROOT/tests/tools/s3rver_durable_put.js ${NODE_OPTIONS:-}" "$S3RVER" -d "$S3DATA" -a 127.0.0.1 \
    -p "$S3PORT" --key "$WORK/s3-key.pem" --cert "$S3CERT" \
    --configure-bucket cairn-bench --configure-bucket restic-bench \
    >"$LOGS/s3rver.log" 2>&1 &
  S3PID=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$S3PORT") 2>/dev/null && return 0
    kill -0 "$S3PID" 2>/dev/null || die "s3rver exited: $(tail -c 1000 "$LOGS/s3rver.log")"
    sleep 0.1
  done
  die "s3rver does not listen on $S3PORT: $(tail -c 1000 "$LOGS/s3rver.log")"
}
stop_s3rver() {
  if [[ -n $S3PID ]]; then
    kill "$S3PID" 2>/dev/null || true
    wait "$S3PID" 2>/dev/null || true
    S3PID=''
  fi
}
cleanup() {
  stop_s3rver
  local t
  for t in "${!RESTORE_DEV[@]}"; do umount_restore_target "$t"; done
}
repo_location() { # TOOL
  if ((S3)); then echo "s3:https://127.0.0.1:$S3PORT/$1-bench"; else echo "$WORK/$1-repo"; fi
}
repo_bytes() { # TOOL: bytes stored (on S3: object sizes, without s3rver's metadata files)
  if ((S3)); then
    find "$S3DATA/$1-bench" -type f -name '*._S3rver_object' -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}'
  else
    du -sb "$WORK/$1-repo" | cut -f1
  fi
}

# Each tool restores into a new ext4 file system of its own: a loop device
# (direct I/O, so data is not cached twice) over an image in $WORK. ext4 skips
# inodes freed in the last ~50 minutes while their inode table block is cached
# (recently_deleted() in fs/ext4/ialloc.c), once per allocation: here, 60k
# files restored next to 60k just deleted took 2-6x longer, so the previous
# tool's deleted restore, not the tool, decided the time. Without root (or
# without losetup), a plain folder as before.
RESTORE_FS="a plain folder in $WORK"
declare -A RESTORE_DEV
mount_restore_target() { # TOOL
  local dir=$WORK/$1-restore img=$WORK/$1-restore.img dev
  mkdir -p "$dir"
  [[ $(id -u) == 0 ]] && command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null || return 0
  truncate -s $((CORPUS_BYTES * 2 + (2 << 30))) "$img"
  if mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img" >"$LOGS/$1-mkfs.log" 2>&1 &&
    dev=$(losetup --direct-io=on -f --show "$img" 2>>"$LOGS/$1-mkfs.log") &&
    mount "$dev" "$dir" 2>>"$LOGS/$1-mkfs.log"; then
    RESTORE_DEV[$1]=$dev
    RESTORE_FS="a new ext4 file system per tool (loop device with direct I/O over an image in $WORK)"
  else
    log "$1: no fresh file system for the restore ($(tail -n 1 "$LOGS/$1-mkfs.log")); a plain folder"
    [[ -n ${dev:-} ]] && losetup -d "$dev"
    rm -f "$img"
  fi
}
umount_restore_target() { # TOOL
  if [[ -n ${RESTORE_DEV[$1]:-} ]]; then
    umount "$WORK/$1-restore" && losetup -d "${RESTORE_DEV[$1]}"
    unset "RESTORE_DEV[$1]"
  fi
  rm -rf "$WORK/$1-restore" "$WORK/$1-restore.img"
}

tool_cmd() { # fills CMD for TOOL STEP [ARG]
  local tool=$1 step=$2 repo target=$WORK/$1-restore
  repo=$(repo_location "$tool")
  local c=("$CAIRN" --no-progress) restic=(restic)
  if ((S3)); then restic+=(--cacert "$S3CERT"); fi
  case $tool/$step in
    cairn/init) CMD=("${c[@]}" -r "$repo" init) ;;
    cairn/backup_*) CMD=("${c[@]}" -r "$repo" backup "$CORPUS") ;;
    cairn/restore_full) CMD=("${c[@]}" -r "$repo" restore latest --target "$target") ;;
    cairn/check_read_data) CMD=("${c[@]}" -r "$repo" check --read-data) ;;
    restic/init) CMD=("${restic[@]}" -r "$repo" init --repository-version 2) ;;
    restic/backup_*) CMD=("${restic[@]}" -r "$repo" --compression auto backup "$CORPUS") ;;
    restic/restore_full) CMD=("${restic[@]}" -r "$repo" restore latest --target "$target") ;;
    restic/check_read_data) CMD=("${restic[@]}" -r "$repo" check --read-data) ;;
    borg/init) CMD=(borg init -e repokey "$repo") ;;
    borg/backup_*) CMD=(borg create --compression zstd,3 "$repo::snap-$3" "$CORPUS") ;;
    borg/restore_full) CMD=(env -C "$target" borg extract "$repo::snap-3") ;;
    borg/check_read_data) CMD=(borg check --verify-data "$repo") ;;
    *) die "no command for $tool/$step" ;;
  esac
}

clean_tool() {
  local tool=$1
  umount_restore_target "$tool"
  rm -rf "$WORK/$tool-repo" "$WORK/restic-cache" "$WORK/borg-base"
  # s3rver reads its folder on every request: emptying the bucket is enough.
  if ((S3)) && [[ -d $S3DATA/$tool-bench ]]; then find "$S3DATA/$tool-bench" -mindepth 1 -delete; fi
}

# Metadata listing used to compare corpus and restore beyond file contents:
# type, mode, owner, size, mtime (seconds; not for dirs and symlinks), link target.
meta_list() {
  (cd "$1" && find . -mindepth 1 -printf '%P\t%y\t%m\t%U:%G\t%s\t%T@\t%l\n' |
    awk -F '\t' 'BEGIN { OFS = "\t" } { split($6, t, "."); $6 = ($2 == "d" || $2 == "l") ? "-" : t[1]; if ($2 == "d") $5 = "-"; print }' |
    LC_ALL=C sort)
}
verify_restore() {
  local tool=$1 restored=$WORK/$1-restore$CORPUS diffs=$LOGS/$1-restore.diff
  log "$tool: comparing the restored tree with the corpus (diff -r, not timed)"
  if [[ ! -d $restored ]]; then
    VERIFIED[$tool]=no
    FAILURES+=("$tool restore: $restored does not exist")
    printf '\n!!!!! %s RESTORE INCORRECT: %s does not exist\n\n' "$tool" "$restored" >&2
    return 1
  fi
  if diff -r --brief --no-dereference "$CORPUS" "$restored" >"$diffs" 2>&1; then
    VERIFIED[$tool]=yes
  else
    VERIFIED[$tool]=no
    FAILURES+=("$tool restore: $(wc -l <"$diffs") difference(s) between corpus and restore, see $diffs")
    printf '\n!!!!! %s RESTORE INCORRECT: restored tree differs from the corpus (%s lines in %s):\n' \
      "$tool" "$(wc -l <"$diffs")" "$diffs" >&2
    head -n 20 "$diffs" >&2
    printf '\n' >&2
  fi
  diff <(meta_list "$CORPUS") <(meta_list "$restored") >"$LOGS/$tool-restore.meta.diff" || true
  META_DIFFS[$tool]=$(grep -c '^<' "$LOGS/$tool-restore.meta.diff" || true)
  if ((META_DIFFS[$tool] > 0)); then
    log "$tool: warning: ${META_DIFFS[$tool]} entries differ in metadata (see $LOGS/$tool-restore.meta.diff)"
  fi
  [[ ${VERIFIED[$tool]} == yes ]]
}

run_tool() {
  local tool=$1 n
  clean_tool "$tool"
  reset_change_file
  tool_cmd "$tool" init
  run_step "$tool" init 0 "${CMD[@]}" || return 0
  for n in 1 2 3; do
    local step=${STEPS[$n]} cold=0
    if ((n == 1)); then cold=1; fi
    if ((n == 3)); then modify_change_file; fi
    tool_cmd "$tool" "$step" "$n"
    run_step "$tool" "$step" "$cold" "${CMD[@]}" || return 0
    if ((n == 1)); then REPO_FULL[$tool]=$(repo_bytes "$tool"); fi
  done
  REPO_FINAL[$tool]=$(repo_bytes "$tool")
  mount_restore_target "$tool"
  tool_cmd "$tool" restore_full
  run_step "$tool" restore_full 1 "${CMD[@]}" || return 0
  verify_restore "$tool" || true
  umount_restore_target "$tool"
  tool_cmd "$tool" check_read_data
  run_step "$tool" check_read_data 1 "${CMD[@]}" || return 0
}

# ---------------------------------------------------------------- run
export CAIRN_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD BORG_PASSPHRASE=$PASSWORD
export RESTIC_CACHE_DIR=$WORK/restic-cache BORG_BASE_DIR=$WORK/borg-base
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND RESTIC_REPOSITORY RESTIC_PASSWORD_FILE \
  RESTIC_PASSWORD_COMMAND BORG_REPO BORG_PASSCOMMAND RESTIC_COMPRESSION 2>/dev/null || true

declare -A VERSION
has_tool cairn && VERSION[cairn]=$("$CAIRN" --version 2>&1 | head -n 1)
has_tool restic && VERSION[restic]=$(restic version 2>&1 | head -n 1)
has_tool borg && VERSION[borg]=$(borg --version 2>&1 | head -n 1)
CAIRN_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && CAIRN_COMMIT+="-dirty"
DATE_START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
UPTIME_START=$(uptime)
log "start: $UPTIME_START"
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NPROC=$(nproc)
MEM_GB=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
KERNEL=$(uname -r)

trap cleanup EXIT
trap 'exit 130' INT TERM
STORAGE="local folders in $WORK"
if ((S3)); then
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
  unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_REGION CAIRN_S3_MAX_ATTEMPTS \
    CAIRN_S3_TIMEOUT_SECONDS CAIRN_S3_MAX_RETRY_SECONDS 2>/dev/null || true
  start_s3rver
  export CAIRN_S3_CACERT=$S3CERT
  S3RVER_VERSION=$(node -p "require('$(dirname "$(readlink -f "$S3RVER")")/../package.json').version" 2>/dev/null || echo unknown)
  STORAGE="S3 buckets (cairn-bench, restic-bench) on s3rver $S3RVER_VERSION at 127.0.0.1, HTTPS (self-signed), data in $S3DATA"
fi
log "repositories: $STORAGE"

for tool in "${TOOL_LIST[@]}"; do
  run_tool "$tool"
  clean_tool "$tool"
done
reset_change_file
if [[ -n $CORPUS_ARG ]]; then rm -f "$STAMP" "$CHANGE_ORIG"; fi
stop_s3rver
rm -rf "$WORK"
UPTIME_END=$(uptime)
DATE_END=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "end: $UPTIME_END"

# ---------------------------------------------------------------- report
fnum() { awk -v x="$1" -v d="${2:-2}" 'BEGIN { printf "%.*f", d, x }'; }
ratio() { # a/b with 2 decimals, "n/a" when either is missing or b is 0
  if [[ -z $1 || -z $2 ]]; then echo n/a; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
step_secs() { # seconds of a successful step, nothing otherwise
  if [[ ${RC[$1,$2]-x} == 0 || ($1 == borg && ${RC[$1,$2]-x} == 1) ]]; then echo "${SECS[$1,$2]}"; fi
}
cell() {
  local s
  s=$(step_secs "$1" "$2")
  if [[ -n $s ]]; then
    printf '%s s / %s MB' "$(fnum "$s" 2)" "$(fnum "$(awk -v k="${RSS[$1,$2]}" 'BEGIN { print k / 1024 }')" 0)"
  elif [[ -n ${RC[$1,$2]-} ]]; then
    printf 'FAILED (exit %s)' "${RC[$1,$2]}"
  else
    printf 'not run'
  fi
}
total_secs() {
  local t=$1 s sum=0 step
  for step in "${STEPS[@]:1}"; do
    s=$(step_secs "$t" "$step")
    [[ -n $s ]] || return 0
    sum=$(awk -v a="$sum" -v b="$s" 'BEGIN { print a + b }')
  done
  echo "$sum"
}
mb() { [[ -n ${1-} ]] && fnum "$(awk -v b="$1" 'BEGIN { print b / 1000000 }')" 1 || echo n/a; }

OTHERS=()
if has_tool cairn; then for t in "${TOOL_LIST[@]}"; do [[ $t != cairn ]] && OTHERS+=("$t"); done; fi

RESULTS=$BENCH_DIR/results
if ((S3)); then RESULTS=$BENCH_DIR/results-s3; fi
md=$RESULTS.md
{
  printf '# %s\n\n' "$(printf '%s vs ' "${TOOL_LIST[@]}" | sed 's/ vs $//')"
  printf -- '- date: %s to %s\n' "$DATE_START" "$DATE_END"
  printf -- '- machine: %s, %s CPUs, %s GiB RAM, Linux %s\n' "$CPU_MODEL" "$NPROC" "$MEM_GB" "$KERNEL"
  printf -- '- load at start: `%s`\n' "$(echo "$UPTIME_START" | sed 's/^ *//')"
  printf -- '- load at end: `%s`\n' "$(echo "$UPTIME_END" | sed 's/^ *//')"
  printf -- '- corpus: %s, %s MB, %s files, %s dirs, %s symlinks (%s)\n' "$CORPUS" \
    "$(mb "$CORPUS_BYTES")" "$CORPUS_FILES" "$CORPUS_DIRS" "$CORPUS_LINKS" \
    "$([[ $BENCH_CORPUS_MB == none ]] && echo "given with --corpus" || echo "cap $BENCH_CORPUS_MB MB")"
  printf -- '- step 3 changes 4 KiB in the middle of `%s` (%s bytes)\n' "$CHANGE_FILE" "$(stat -c %s "$CORPUS/$CHANGE_FILE")"
  printf -- '- page cache dropped before cold steps: %s\n' "$CACHES_DROPPED"
  printf -- '- repositories: %s\n' "$STORAGE"
  printf -- '- restore targets: %s\n' "$RESTORE_FS"
  for t in "${TOOL_LIST[@]}"; do
    printf -- '- %s: %s%s\n' "$t" "${VERSION[$t]}" "$([[ $t == cairn ]] && echo " (commit $CAIRN_COMMIT, $CAIRN_ORIG, sha256 $CAIRN_SHA…)")"
  done
  printf -- '- settings: cairn default compression (auto = zstd 3 with hashLog 16, chainLog 14), default KDF tuning (0.5 s); restic repo v2, --compression auto; borg -e repokey, --compression zstd,3\n\n'

  printf '| step |'
  for t in "${TOOL_LIST[@]}"; do printf ' %s s / RSS MB |' "$t"; done
  for t in "${OTHERS[@]}"; do printf ' cairn/%s time |' "$t"; done
  printf '\n|---|'
  for t in "${TOOL_LIST[@]}" "${OTHERS[@]}"; do printf -- '---:|'; done
  printf '\n'
  for step in "${STEPS[@]:1}" init; do
    printf '| %s |' "${STEP_LABEL[$step]}"
    for t in "${TOOL_LIST[@]}"; do printf ' %s |' "$(cell "$t" "$step")"; done
    for t in "${OTHERS[@]}"; do printf ' %s |' "$(ratio "$(step_secs cairn "$step")" "$(step_secs "$t" "$step")")"; done
    printf '\n'
    if [[ $step == check_read_data ]]; then
      printf '| total steps 1-5 (s) |'
      for t in "${TOOL_LIST[@]}"; do s=$(total_secs "$t"); printf ' %s |' "$([[ -n $s ]] && fnum "$s" 2 || echo n/a)"; done
      for t in "${OTHERS[@]}"; do printf ' %s |' "$(ratio "$(total_secs cairn)" "$(total_secs "$t")")"; done
      printf '\n'
    fi
  done
  printf '| repo size after step 1 (MB) |'
  for t in "${TOOL_LIST[@]}"; do printf ' %s |' "$(mb "${REPO_FULL[$t]-}")"; done
  for t in "${OTHERS[@]}"; do printf ' %s |' "$(ratio "${REPO_FULL[cairn]-}" "${REPO_FULL[$t]-}")"; done
  printf '\n| repo size after step 3 (MB) |'
  for t in "${TOOL_LIST[@]}"; do printf ' %s |' "$(mb "${REPO_FINAL[$t]-}")"; done
  for t in "${OTHERS[@]}"; do printf ' %s |' "$(ratio "${REPO_FINAL[cairn]-}" "${REPO_FINAL[$t]-}")"; done
  printf '\n| restore identical to corpus (diff -r) |'
  for t in "${TOOL_LIST[@]}"; do printf ' %s |' "${VERIFIED[$t]-not run}"; done
  for t in "${OTHERS[@]}"; do printf ' |'; done
  printf '\n| entries with metadata differences |'
  for t in "${TOOL_LIST[@]}"; do printf ' %s |' "${META_DIFFS[$t]-n/a}"; done
  for t in "${OTHERS[@]}"; do printf ' |'; done
  printf '\n\nRatios below 1 mean cairn is faster or smaller. Repository sizes are %s in MB of 10^6 bytes;\n' \
    "$( ((S3)) && echo 'the sum of the stored objects'"'"' sizes' || echo '`du -sb`')"
  printf 'RSS is peak resident set size in MiB.\n\n'
  # CPU seconds show how far a step is from this machine's floor: with N
  # cores, no tool finishes a step faster than (its CPU + the server's) / N.
  printf 'CPU seconds (user + system) of each step%s, on %s CPUs:\n\n' \
    "$( ((S3)) && echo ', and in brackets what s3rver used meanwhile' || true)" "$NPROC"
  printf '| step |'
  for t in "${TOOL_LIST[@]}"; do printf ' %s CPU s |' "$t"; done
  printf '\n|---|'
  for t in "${TOOL_LIST[@]}"; do printf -- '---:|'; done
  printf '\n'
  for step in "${STEPS[@]:1}"; do
    printf '| %s |' "${STEP_LABEL[$step]}"
    for t in "${TOOL_LIST[@]}"; do
      if [[ -n $(step_secs "$t" "$step") ]]; then
        printf ' %s%s |' "$(fnum "${CPU[$t,$step]}" 2)" \
          "$([[ -n ${S3CPU[$t,$step]-} ]] && printf ' (%s)' "$(fnum "${S3CPU[$t,$step]}" 2)")"
      else
        printf ' n/a |'
      fi
    done
    printf '\n'
  done
  printf '\n1-minute load average at the start of each step:\n\n'
  for t in "${TOOL_LIST[@]}"; do
    printf -- '- %s:' "$t"
    for step in "${STEPS[@]}"; do [[ -n ${LOAD[$t,$step]-} ]] && printf ' %s %s;' "$step" "${LOAD[$t,$step]}"; done
    printf '\n'
  done
  if ((${#FAILURES[@]})); then
    printf '\n## FAILURES\n\n'
    for f in "${FAILURES[@]}"; do printf -- '- %s\n' "$f"; done
  fi
} >"$md"

jstr() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr '\t\n' '  ')"; }
jnum() { [[ -n ${1-} ]] && echo "$1" || echo null; }
{
  printf '{\n  "date_start": %s, "date_end": %s,\n' "$(jstr "$DATE_START")" "$(jstr "$DATE_END")"
  printf '  "machine": {"cpu": %s, "nproc": %s, "mem_gib": %s, "kernel": %s, "uptime_start": %s, "uptime_end": %s},\n' \
    "$(jstr "$CPU_MODEL")" "$NPROC" "$MEM_GB" "$(jstr "$KERNEL")" "$(jstr "$UPTIME_START")" "$(jstr "$UPTIME_END")"
  printf '  "corpus": {"path": %s, "cap_mb": %s, "bytes": %s, "files": %s, "dirs": %s, "symlinks": %s, "change_file": %s},\n' \
    "$(jstr "$CORPUS")" "$([[ $BENCH_CORPUS_MB == none ]] && echo null || echo "$BENCH_CORPUS_MB")" "$CORPUS_BYTES" "$CORPUS_FILES" "$CORPUS_DIRS" "$CORPUS_LINKS" "$(jstr "$CHANGE_FILE")"
  printf '  "storage": %s, "s3": %s,\n' "$(jstr "$STORAGE")" "$( ((S3)) && echo true || echo false)"
  printf '  "caches_dropped": %s,\n  "tools": {\n' "$([[ $CACHES_DROPPED == yes ]] && echo true || echo false)"
  first=1
  for t in "${TOOL_LIST[@]}"; do
    ((first)) || printf ',\n'
    first=0
    printf '    "%s": {\n      "version": %s,\n      "steps": {\n' "$t" "$(jstr "${VERSION[$t]}")"
    sfirst=1
    for step in "${STEPS[@]}"; do
      [[ -n ${RC[$t,$step]-} ]] || continue
      ((sfirst)) || printf ',\n'
      sfirst=0
      printf '        "%s": {"seconds": %s, "cpu_seconds": %s, "s3rver_cpu_seconds": %s, "max_rss_kib": %s, "exit": %s, "ok": %s, "load1": %s}' "$step" \
        "$(jnum "${SECS[$t,$step]}")" "$(jnum "${CPU[$t,$step]-}")" "$(jnum "${S3CPU[$t,$step]-}")" "$(jnum "${RSS[$t,$step]}")" "${RC[$t,$step]}" \
        "$([[ -n $(step_secs "$t" "$step") ]] && echo true || echo false)" "$(jnum "${LOAD[$t,$step]}")"
    done
    printf '\n      },\n      "total_seconds_steps_1_5": %s, "repo_bytes_after_full": %s, "repo_bytes_after_step3": %s,\n' \
      "$(jnum "$(total_secs "$t")")" "$(jnum "${REPO_FULL[$t]-}")" "$(jnum "${REPO_FINAL[$t]-}")"
    printf '      "restore_identical": %s, "metadata_differences": %s\n    }' \
      "$(case ${VERIFIED[$t]-} in yes) echo true ;; no) echo false ;; *) echo null ;; esac)" "$(jnum "${META_DIFFS[$t]-}")"
  done
  printf '\n  },\n  "ratios_cairn_over": {'
  first=1
  for t in "${OTHERS[@]}"; do
    ((first)) || printf ','
    first=0
    printf '\n    "%s": {' "$t"
    for step in "${STEPS[@]}"; do
      r=$(ratio "$(step_secs cairn "$step")" "$(step_secs "$t" "$step")")
      printf '"%s": %s, ' "$step" "$([[ $r == n/a ]] && echo null || echo "$r")"
    done
    r=$(ratio "$(total_secs cairn)" "$(total_secs "$t")")
    printf '"total_steps_1_5": %s, ' "$([[ $r == n/a ]] && echo null || echo "$r")"
    r=$(ratio "${REPO_FULL[cairn]-}" "${REPO_FULL[$t]-}")
    printf '"repo_size_after_full": %s}' "$([[ $r == n/a ]] && echo null || echo "$r")"
  done
  printf '\n  },\n  "failures": ['
  first=1
  for f in "${FAILURES[@]}"; do
    ((first)) || printf ','
    first=0
    printf '\n    %s' "$(jstr "$f")"
  done
  printf '\n  ]\n}\n'
} >"$RESULTS.json"

printf '\n'
cat "$md"
printf '\nwritten: %s, %s; logs in %s\n' "$md" "$RESULTS.json" "$LOGS"
if ((${#FAILURES[@]})); then
  die "${#FAILURES[@]} failure(s): ${FAILURES[*]}"
fi
