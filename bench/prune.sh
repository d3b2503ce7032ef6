#!/usr/bin/env bash
# bench/prune.sh: forget + prune after 30 daily snapshots of a changing corpus,
# cairn vs restic, on one machine (run it on an otherwise idle machine).
#
# Corpus: BENCH_FILES files of BENCH_FILE_KB KiB of random data. Each "day"
# rewrites 5% of the files, adds 1% new ones and deletes 1%; cairn and
# restic back up the same state (interleaved), with --time set to that day.
# Then, timed with /usr/bin/time (wall seconds, peak RSS):
#   forget --keep-daily 7 --keep-weekly 4
#   cairn:  prune (two-phase: mark), prune (sweep), and on a copy of the
#           repository after forget, prune --exclusive
#           and prune --exclusive opened with a key file (no key derivation)
#   restic: prune
# and then BENCH_ROUNDS (default 5) alternating rounds of cairn prune
# --exclusive and restic prune, each on a fresh copy of the state after
# forget, reported as medians (single runs vary by +-30 % here).
# Repository sizes before and after are printed with the ratios.
#
# --synthetic instead: a synthetic repository of BENCH_PACKS (default 100000)
# packs with one tiny blob each, half of them used by one snapshot (made by the
# disabled unit test SyntheticRepo.DISABLED_ManyTinyPacks), then two-phase
# prune (mark, sweep) timed with its peak RSS.
#
# Environment: BENCH_DIR (default /var/tmp/cairn-bench-prune), BENCH_FILES
# (default 400), BENCH_FILE_KB (default 512), CAIRN (default
# <repo>/build/release/cairn), RESTIC (default restic).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/cairn-bench-prune}
FILES=${BENCH_FILES:-400}
FILE_KB=${BENCH_FILE_KB:-512}
CAIRN=${CAIRN:-$ROOT/build/release/cairn}
RESTIC=${RESTIC:-restic}
DAYS=30
ROUNDS=${BENCH_ROUNDS:-5}
export CAIRN_PASSWORD=cairn-bench-not-a-secret RESTIC_PASSWORD=cairn-bench-not-a-secret

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[[ -x $CAIRN ]] || { echo "prune.sh: no cairn binary at $CAIRN" >&2; exit 1; }
if ! command -v "$RESTIC" >/dev/null && [[ $RESTIC == restic && $(id -u) -eq 0 ]]; then
  log "installing restic with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y restic >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y restic >/dev/null; } || true
fi
command -v "$RESTIC" >/dev/null || { echo "prune.sh: restic not found (apt-get install restic)" >&2; exit 1; }

if [[ ${1:-} == --synthetic ]]; then
  PACKS=${BENCH_PACKS:-100000}
  TESTS=${CAIRN_TESTS:-$ROOT/build/release/cairn_tests}
  rm -rf "$BENCH_DIR"
  mkdir -p "$BENCH_DIR"
  log "generating $PACKS packs"
  CAIRN_SYNTH_REPO=$BENCH_DIR/synth CAIRN_SYNTH_PACKS=$PACKS CAIRN_SYNTH_PASSWORD=$CAIRN_PASSWORD \
    "$TESTS" --gtest_also_run_disabled_tests --gtest_filter='SyntheticRepo.*' >/dev/null
  for step in mark sweep; do
    /usr/bin/time -f '%e %M' -o "$BENCH_DIR/.time" "$CAIRN" --no-progress --quiet --repo "$BENCH_DIR/synth" prune
    read -r secs rss <"$BENCH_DIR/.time"
    echo "| synthetic $PACKS packs, prune ($step) | $secs s | $((rss / 1024)) MiB |"
  done
  "$CAIRN" --no-progress --quiet --repo "$BENCH_DIR/synth" check >/dev/null
  echo "packs left: $(find "$BENCH_DIR/synth/data" -type f | wc -l)"
  exit 0
fi

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/corpus"
C=$BENCH_DIR/corpus
CR=$BENCH_DIR/cairn-repo
RR=$BENCH_DIR/restic-repo
RESULTS=$BENCH_DIR/results.txt
: >"$RESULTS"

# timed NAME CMD...: runs CMD, appends "NAME seconds peak_rss_kib" to RESULTS.
timed() {
  local name=$1
  shift
  /usr/bin/time -f '%e %M' -o "$BENCH_DIR/.time" "$@" >/dev/null 2>"$BENCH_DIR/.err" ||
    { cat "$BENCH_DIR/.err" >&2; echo "prune.sh: $name failed" >&2; exit 1; }
  echo "$name $(cat "$BENCH_DIR/.time")" | tee -a "$RESULTS" >&2
}

size_of() { du -sb "$1" | cut -f1; }

log "corpus: $FILES files x $FILE_KB KiB"
next=0
for ((i = 0; i < FILES; i++)); do head -c $((FILE_KB * 1024)) /dev/urandom >"$C/f$i"; next=$((i + 1)); done

"$CAIRN" --no-progress --quiet --repo "$CR" init >/dev/null
"$RESTIC" -q -r "$RR" init >/dev/null
RANDOM=4242
for ((day = 1; day <= DAYS; day++)); do
  mapfile -t names < <(ls "$C")
  n=${#names[@]}
  for ((k = 0; k < n / 20; k++)); do head -c $((FILE_KB * 1024)) /dev/urandom >"$C/${names[RANDOM % n]}"; done
  for ((k = 0; k < (n + 99) / 100; k++)); do head -c $((FILE_KB * 1024)) /dev/urandom >"$C/f$next"; next=$((next + 1)); done
  for ((k = 0; k < n / 100; k++)); do rm -f "$C/${names[RANDOM % n]}"; done
  t=$(printf '2026-10-%02d 03:00:00' "$day")
  "$CAIRN" --no-progress --quiet --repo "$CR" backup "$C" --time "$t" >/dev/null
  "$RESTIC" -q -r "$RR" backup "$C" --time "$t" >/dev/null
  ((day % 5 == 0)) && log "day $day backed up"
done
cairn_before=$(size_of "$CR")
restic_before=$(size_of "$RR")

timed cairn_forget "$CAIRN" --no-progress --quiet --repo "$CR" forget --keep-daily 7 --keep-weekly 4
cp -a "$CR" "$BENCH_DIR/cairn-repo-exclusive"
# The same state opened with a key file (what automated jobs use, docs/security.md):
# no argon2id derivation. A pristine copy stays for profiling.
rm -f "$BENCH_DIR/bench.key"
"$CAIRN" --no-progress --quiet --repo "$CR" key add --new-key-file "$BENCH_DIR/bench.key" >/dev/null
cp -a "$CR" "$BENCH_DIR/cairn-repo-keyfile"
rm -rf "$BENCH_DIR/cairn-repo-after-forget"
cp -a "$CR" "$BENCH_DIR/cairn-repo-after-forget"
timed cairn_prune_mark "$CAIRN" --no-progress --quiet --repo "$CR" prune
timed cairn_prune_sweep "$CAIRN" --no-progress --quiet --repo "$CR" prune
timed cairn_prune_exclusive "$CAIRN" --no-progress --quiet --repo "$BENCH_DIR/cairn-repo-exclusive" prune --exclusive
timed cairn_prune_exclusive_keyfile "$CAIRN" --no-progress --quiet --repo "$BENCH_DIR/cairn-repo-keyfile" --key-file "$BENCH_DIR/bench.key" prune --exclusive
timed restic_forget "$RESTIC" -q -r "$RR" forget --keep-daily 7 --keep-weekly 4
rm -rf "$BENCH_DIR/restic-repo-after-forget"
cp -a "$RR" "$BENCH_DIR/restic-repo-after-forget"
timed restic_prune "$RESTIC" -q -r "$RR" prune

# One run of each is noisy (page cache and writeback state): repeat the
# exclusive prunes, alternating, each on a fresh copy of the state after forget.
for ((round = 1; round <= ROUNDS; round++)); do
  rm -rf "$BENCH_DIR/round" && mkdir -p "$BENCH_DIR/round"
  cp -a "$BENCH_DIR/cairn-repo-after-forget" "$BENCH_DIR/round/cairn" && sync
  timed "cairn_round_$round" "$CAIRN" --no-progress --quiet --repo "$BENCH_DIR/round/cairn" prune --exclusive
  cp -a "$BENCH_DIR/restic-repo-after-forget" "$BENCH_DIR/round/restic" && sync
  timed "restic_round_$round" "$RESTIC" -q -r "$BENCH_DIR/round/restic" prune
done
rm -rf "$BENCH_DIR/round"
cairn_after=$(size_of "$CR")
cairn_excl_after=$(size_of "$BENCH_DIR/cairn-repo-exclusive")
restic_after=$(size_of "$RR")
"$CAIRN" --no-progress --quiet --repo "$CR" check >/dev/null

get() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
# median PREFIX: the median wall time of the rounds named PREFIX_<n>.
median() { awk -v p="$1_" 'index($1, p) == 1 { print $2 }' "$RESULTS" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
all_of() { awk -v p="$1_" 'index($1, p) == 1 { printf "%s%s", sep, $2; sep = " " }' "$RESULTS"; }
two_phase_s=$(sum "$(get cairn_prune_mark 2)" "$(get cairn_prune_sweep 2)")
two_phase_rss=$(max "$(get cairn_prune_mark 3)" "$(get cairn_prune_sweep 3)")
cat <<EOF
30 daily snapshots, $FILES x $FILE_KB KiB corpus, 5% rewritten daily; forget --keep-daily 7 --keep-weekly 4

| step | cairn s | cairn RSS MiB | restic s | restic RSS MiB | time ratio cairn/restic |
|---|---|---|---|---|---|
| forget | $(get cairn_forget 2) | $(($(get cairn_forget 3) / 1024)) | $(get restic_forget 2) | $(($(get restic_forget 3) / 1024)) | $(ratio "$(get cairn_forget 2)" "$(get restic_forget 2)") |
| prune, two-phase (mark + sweep) | $two_phase_s | $((two_phase_rss / 1024)) | $(get restic_prune 2) | $(($(get restic_prune 3) / 1024)) | $(ratio "$two_phase_s" "$(get restic_prune 2)") |
| prune --exclusive | $(get cairn_prune_exclusive 2) | $(($(get cairn_prune_exclusive 3) / 1024)) | $(get restic_prune 2) | $(($(get restic_prune 3) / 1024)) | $(ratio "$(get cairn_prune_exclusive 2)" "$(get restic_prune 2)") |
| prune --exclusive, key file (no KDF) | $(get cairn_prune_exclusive_keyfile 2) | $(($(get cairn_prune_exclusive_keyfile 3) / 1024)) | $(get restic_prune 2) | $(($(get restic_prune 3) / 1024)) | $(ratio "$(get cairn_prune_exclusive_keyfile 2)" "$(get restic_prune 2)") |
| prune --exclusive, median of $ROUNDS alternating rounds on fresh copies | $(median cairn_round) | | $(median restic_round) | | **$(ratio "$(median cairn_round)" "$(median restic_round)")** |

Rounds (s): cairn $(all_of cairn_round); restic $(all_of restic_round).

| repository | before forget MB | after prune MB |
|---|---|---|
| cairn (two-phase) | $((cairn_before / 1000000)) | $((cairn_after / 1000000)) |
| cairn (--exclusive) | $((cairn_before / 1000000)) | $((cairn_excl_after / 1000000)) |
| restic | $((restic_before / 1000000)) | $((restic_after / 1000000)) |
EOF
