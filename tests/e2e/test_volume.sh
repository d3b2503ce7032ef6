# Volume engine on a real, loop-mounted btrfs: a read-only subvolume snapshot
# backed up under the subvolume's own path while a writer appends to two
# files; every restored state is one instant (no torn record, the two files
# agree); the snapshot is deleted after success, after a backup that fails
# after the snapshot (repository out of space), after a failing quiesce hook,
# on SIGTERM, and -- after SIGKILL -- by the next run (only snapshots whose
# process is gone, only this service's). Quiesce hooks run around the
# snapshot only. freeze is refused on btrfs (and leaves nothing frozen).
# Policy typos. LVM and ZFS run where their tools and kernel support exist.
# Usage: bash tests/e2e/test_volume.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

step "policy: volume engine fields and typos"
REPO=$T/repo
new_repo "$REPO"
policy() {  # policy FILE ENGINE-FLOW-MAPPING [extra service lines]
  cat >"$1" <<EOF
repository: { location: $REPO }
services:
  vol:
    owner: team-storage
    objectives: { rpo: 1d, rto: 4h }
    schedule: "0 2 * * *"
    engine: $2
${3:-}
EOF
}
policy "$T/typo1.yaml" "{ type: volume, driver: btrfss, source: /srv/data }"
expect_exit 2 cairn policy validate --config "$T/typo1.yaml"
assert_contains "$ERR" 'engine.driver: "btrfss" is not btrfs, lvm, zfs or auto (did you mean "btrfs"?)'
policy "$T/typo2.yaml" "{ type: volume, source: /srv/data, snapshot_dri: /srv/snaps }"
expect_exit 2 cairn policy validate --config "$T/typo2.yaml"
assert_contains "$ERR" 'unknown key "snapshot_dri" (did you mean "snapshot_dir"?)'
policy "$T/typo3.yaml" "{ type: volume, driver: btrfs }"
expect_exit 2 cairn policy validate --config "$T/typo3.yaml"
assert_contains "$ERR" "engine.source: missing"
policy "$T/typo4.yaml" "{ type: volume, driver: btrfs, source: srv/data, snapshot_size: 2G }"
expect_exit 2 cairn policy validate --config "$T/typo4.yaml"
assert_contains "$ERR" '"srv/data" is not absolute'
assert_contains "$ERR" "engine.snapshot_size: applies to lvm only"
policy "$T/typo5.yaml" "{ type: volume, driver: lvm, source: vg0/data, snapshot_size: lots, quiesce: { pre: [true], psot: [true] } }"
expect_exit 2 cairn policy validate --config "$T/typo5.yaml"
assert_contains "$ERR" '"lots" is not an LVM size'
assert_contains "$ERR" 'unknown key "psot" (did you mean "post"?)'
policy "$T/typo6.yaml" "{ type: volume, driver: btrfs, source: /srv/data, freeze: true }"
expect_exit 2 cairn policy validate --config "$T/typo6.yaml"
assert_contains "$ERR" "freeze cannot be used with btrfs"
policy "$T/ok.yaml" "{ type: volume, driver: lvm, source: vg0/data, snapshot_size: 20%ORIGIN, freeze: true }"
expect_exit 0 cairn policy validate --config "$T/ok.yaml"
expect_exit 0 cairn --json policy show --config "$T/ok.yaml"
assert_eq "lvm 20%ORIGIN true" "$(jq -r '.services.vol.engine | "\(.driver) \(.snapshot_size) \(.freeze)"' "$OUT_FILE")"

if [ "$(id -u)" -ne 0 ]; then
  skip "btrfs: not root (loop mounts need root)"
  exit 0
fi
if ! command -v mkfs.btrfs >/dev/null || ! grep -qw btrfs /proc/filesystems; then
  skip "btrfs: no mkfs.btrfs (apt-get install btrfs-progs; scripts/setup does) or no btrfs in this kernel"
  exit 0
fi

step "loop-mounted btrfs with a subvolume"
MNT=$T/mnt
mkdir -p "$MNT"
truncate -s 1G "$T/btrfs.img"
mkfs.btrfs -q "$T/btrfs.img" >/dev/null
if ! mount -o loop "$T/btrfs.img" "$MNT"; then
  skip "btrfs: cannot loop-mount here"
  exit 0
fi
# Teardown: stop the writer, thaw (in case), delete every subvolume, unmount
# (which detaches the loop device).
on_exit "[ -n \"\${WPID:-}\" ] && kill \$WPID 2>/dev/null; fsfreeze -u '$MNT' 2>/dev/null; umount '$MNT' 2>/dev/null || umount -l '$MNT'"
btrfs subvolume create "$MNT/data" >/dev/null
DATA=$MNT/data
mkdir -p "$DATA/docs/deep" "$DATA/bin"
for i in $(seq 1 50); do echo "document $i" >"$DATA/docs/deep/doc$i.txt"; done
random_file "$DATA/bin/blob" 3000000
echo scratch >"$DATA/docs/skip.tmp"
ln -s docs/deep/doc1.txt "$DATA/link"

leftovers() { find "$MNT" -maxdepth 3 -name '.cairn-snap-*' -printf '%P\n' | sort; }
subvolumes() { btrfs subvolume list "$MNT" | awk '{print $NF}' | sort | tr '\n' ' '; }

CFG=$T/cairn.yaml
policy "$CFG" "{ type: volume, driver: btrfs, source: $DATA, exclude: ['*.tmp'], quiesce: { pre: ['echo pre >>$T/hooks.log'], post: ['echo \"post \$CAIRN_RESULT \$CAIRN_VOLUME_SOURCE\" >>$T/hooks.log; ls -a $MNT >>$T/hooks.log'] } }"
expect_exit 0 cairn policy validate --config "$CFG"

step "backup: snapshot recorded under the subvolume's path, then deleted"
expect_exit 0 cairn --config "$CFG" --json backup --service vol
ID1=$(jq -r .snapshot_id "$OUT_FILE")
assert_eq "volume btrfs $DATA false true" "$(jq -r '.engine | "\(.type) \(.driver) \(.source) \(.freeze) \(.quiesced)"' "$OUT_FILE")"
SNAPNAME=$(jq -r .engine.snapshot "$OUT_FILE")
[[ $SNAPNAME == .cairn-snap-vol-* ]] || fail "snapshot name $SNAPNAME"
assert_eq "" "$(leftovers)" "leftover snapshots after success"
assert_eq "data " "$(subvolumes)" "subvolumes after success"
# The post hook ran right after the snapshot (it saw it), before the upload.
assert_contains "$(cat "$T/hooks.log")" "pre"
assert_contains "$(cat "$T/hooks.log")" "post success $DATA"
assert_contains "$(cat "$T/hooks.log")" "$SNAPNAME"
expect_exit 0 cairn --repo "$REPO" --json snapshots --service vol
assert_eq "$DATA" "$(jq -r '.[0].paths | join(",")' "$OUT_FILE")"
expect_exit 0 cairn --repo "$REPO" ls "$ID1"
assert_contains "$OUT" "$DATA/docs/deep/doc7.txt"
assert_not_contains "$OUT" ".cairn-snap"
assert_not_contains "$OUT" "skip.tmp"

step "restore: the files come back under the source path"
expect_exit 0 cairn --repo "$REPO" restore "$ID1" --target "$T/r1"
rm "$DATA/docs/skip.tmp"
assert_same_content "$DATA" "$T/r1$DATA"
echo scratch >"$DATA/docs/skip.tmp"

step "consistency: a writer appends to two files during backups"
cat >"$T/writer.py" <<'EOF'
import hashlib, os, sys
# Record i: 64 bytes "iiiiiiiiii <40 hex of sha256(i)> ...\n"; one write()
# per record and file, first to a.log, then to b.log, each made durable
# (fsync) before the next, as a database orders its writes. (Without fsync
# a btrfs snapshot may hold more of b.log than of a.log: it flushes dirty
# data file by file, just as a crash keeps whatever was written back.)
a = os.open(sys.argv[1] + "/a.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
b = os.open(sys.argv[1] + "/b.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
i = 0
while True:
    i += 1
    rec = ("%010d %s" % (i, hashlib.sha256(str(i).encode()).hexdigest()[:40])).ljust(63) + "\n"
    os.write(a, rec.encode())
    os.fsync(a)
    os.write(b, rec.encode())
    os.fsync(b)
EOF
cat >"$T/verify.py" <<'EOF'
import hashlib, sys
def records(path):
    data = open(path, "rb").read()
    if len(data) % 64:
        sys.exit("%s: torn record: %d bytes is not a whole number of records" % (path, len(data)))
    for k in range(len(data) // 64):
        rec = data[k * 64:(k + 1) * 64].decode()
        i, digest = int(rec[:10]), rec[11:51]
        if i != k + 1 or digest != hashlib.sha256(str(i).encode()).hexdigest()[:40]:
            sys.exit("%s: record %d is damaged: %r" % (path, k + 1, rec))
    return len(data) // 64
na, nb = records(sys.argv[1] + "/a.log"), records(sys.argv[1] + "/b.log")
# One instant: b.log is what a.log is, or one record behind.
if not (nb == na or nb == na - 1):
    sys.exit("a.log has %d records, b.log %d: not one instant" % (na, nb))
print(na)
EOF
python3 "$T/writer.py" "$DATA/docs" &
WPID=$!
for _ in $(seq 1 100); do [ -s "$DATA/docs/b.log" ] && break; sleep 0.05; done
for n in 1 2 3; do
  expect_exit 0 cairn --config "$CFG" --json backup --service vol
  id=$(jq -r .snapshot_id "$OUT_FILE")
  rm_tree "$T/rc"
  expect_exit 0 cairn --repo "$REPO" restore "$id" --target "$T/rc"
  records=$(python3 "$T/verify.py" "$T/rc$DATA/docs") || fail "backup $n: $records"
  echo "  backup $n: $records records in both logs"
done
kill "$WPID"
wait "$WPID" 2>/dev/null || true
WPID=
rm "$DATA/docs/a.log" "$DATA/docs/b.log"
assert_eq "" "$(leftovers)" "leftover snapshots after the writer's backups"

step "a backup that fails after the snapshot (repository out of space) deletes it"
mkdir -p "$T/small"
mount -t tmpfs -o size=3m tmpfs "$T/small"
on_exit "umount '$T/small' 2>/dev/null"
new_repo "$T/small/repo"
policy "$T/full.yaml" "{ type: volume, driver: btrfs, source: $DATA }"
sed -i "s|location: $REPO|location: $T/small/repo|" "$T/full.yaml"
random_file "$DATA/bin/big" 8000000
expect_exit 1 cairn --config "$T/full.yaml" backup --service vol
assert_contains "$ERR" "vol"
assert_eq "" "$(leftovers)" "leftover snapshots after a failed backup"
assert_eq "0" "$(cairn --repo "$T/small/repo" --json snapshots | jq length)" "snapshots in the full repository"
rm "$DATA/bin/big"

step "wrong password: exit 12, no snapshot taken"
CAIRN_PASSWORD=wrong expect_exit 12 cairn --config "$CFG" backup --service vol
assert_eq "" "$(leftovers)"

step "a failing quiesce pre hook: no snapshot, post hooks still run"
: >"$T/hooks.log"
policy "$T/prefail.yaml" "{ type: volume, driver: btrfs, source: $DATA, quiesce: { pre: ['exit 3'], post: ['echo post \$CAIRN_RESULT >>$T/hooks.log'] } }"
expect_exit 1 cairn --config "$T/prefail.yaml" backup --service vol
assert_contains "$ERR" "quiesce hook 'exit 3'"
assert_eq "post failure" "$(cat "$T/hooks.log")"
assert_eq "" "$(leftovers)"

step "freeze on btrfs (driver auto) is refused and freezes nothing"
policy "$T/freeze.yaml" "{ type: volume, source: $DATA, freeze: true }"
expect_exit 0 cairn policy validate --config "$T/freeze.yaml"
expect_exit 2 cairn --config "$T/freeze.yaml" backup --service vol
assert_contains "$ERR" "freeze cannot be used with btrfs"
timeout 20 touch "$DATA/after-freeze" || fail "the file system is frozen"
assert_eq "" "$(leftovers)"

step "not a subvolume / not btrfs: clear errors"
policy "$T/notsub.yaml" "{ type: volume, driver: btrfs, source: $DATA/docs }"
expect_exit 2 cairn --config "$T/notsub.yaml" backup --service vol
assert_contains "$ERR" "is a folder, not a btrfs subvolume"
policy "$T/notbtrfs.yaml" "{ type: volume, source: $T }"
expect_exit 2 cairn --config "$T/notbtrfs.yaml" backup --service vol
assert_contains "$ERR" "cannot be snapshotted here"

# The post hook stops cairn itself (SIGSTOP) right after the snapshot, so the
# signal below arrives while the snapshot exists -- deterministically.
STOPCFG=$T/stop.yaml
policy "$STOPCFG" "{ type: volume, driver: btrfs, source: $DATA, quiesce: { post: ['kill -STOP \$PPID'] } }"
wait_stopped() {
  for _ in $(seq 1 600); do
    [[ $(ps -o stat= -p "$1" 2>/dev/null) == T* ]] && return 0
    sleep 0.05
  done
  fail "cairn did not reach the snapshot"
}

step "SIGTERM: the snapshot is deleted before cairn exits"
"$CAIRN_BIN" --no-progress --config "$STOPCFG" backup --service vol >"$T/term.out" 2>"$T/term.err" &
CPID=$!
wait_stopped "$CPID"
[ -n "$(leftovers)" ] || fail "no snapshot while cairn is stopped after it"
kill -TERM "$CPID"
kill -CONT "$CPID"
rc=0
wait "$CPID" || rc=$?
((rc != 0)) || fail "a terminated backup exited 0"
assert_eq "" "$(leftovers)" "leftover snapshots after SIGTERM"
assert_eq "data " "$(subvolumes)"

step "SIGKILL: the snapshot stays; the next run deletes it (and only orphans of this service)"
"$CAIRN_BIN" --no-progress --config "$STOPCFG" backup --service vol >/dev/null 2>&1 &
CPID=$!
wait_stopped "$CPID"
KILLED=$(leftovers)
kill -KILL "$CPID"
{ wait "$CPID" || true; } 2>/dev/null
[ -n "$KILLED" ] || fail "no snapshot after SIGKILL"
now=$(date +%s)
btrfs subvolume snapshot -r "$DATA" "$MNT/.cairn-snap-vol-$$-$now" >/dev/null          # a live process: kept
btrfs subvolume snapshot -r "$DATA" "$MNT/.cairn-snap-vol-other-999999-$now" >/dev/null  # another service: kept
expect_exit 0 cairn --config "$CFG" backup --service vol
assert_contains "$ERR" "deleted leftover volume snapshot $MNT/$KILLED"
assert_eq ".cairn-snap-vol-$$-$now
.cairn-snap-vol-other-999999-$now" "$(leftovers)"
btrfs subvolume delete "$MNT/.cairn-snap-vol-$$-$now" "$MNT/.cairn-snap-vol-other-999999-$now" >/dev/null
assert_eq "data " "$(subvolumes)"

step "a subvolume that is the mount's root: snapshots go to .cairn-snapshots inside, left out of the backup"
mkdir -p "$T/mnt2"
LOOPDEV=$(awk -v m="$MNT" '$2 == m { print $1 }' /proc/mounts)
mount -o subvol=data "$LOOPDEV" "$T/mnt2"
on_exit "umount '$T/mnt2' 2>/dev/null"
policy "$T/root.yaml" "{ type: volume, source: $T/mnt2 }"
expect_exit 0 cairn --config "$T/root.yaml" --json backup --service vol
ID=$(jq -r .snapshot_id "$OUT_FILE")
expect_exit 0 cairn --repo "$REPO" ls "$ID"
assert_contains "$OUT" "$T/mnt2/docs/deep/doc1.txt"
assert_not_contains "$OUT" ".cairn-snapshots"
[ -z "$(find "$T/mnt2/.cairn-snapshots" -mindepth 1 2>/dev/null)" ] || fail "snapshot left in $T/mnt2/.cairn-snapshots"
rmdir "$T/mnt2/.cairn-snapshots"
umount "$T/mnt2"

step "LVM"
if ! command -v lvcreate >/dev/null; then
  skip "LVM: lvm2 is not installed (lvcreate not found)"
elif [ ! -e /dev/mapper/control ] && ! grep -qw device-mapper /proc/misc; then
  skip "LVM: this kernel has no device-mapper"
else
  VG=cairne2e$$
  truncate -s 300M "$T/lvm.img"
  LOOP=$(losetup --find --show "$T/lvm.img")
  on_exit "umount /run/cairn/volume/cairn-snap-* 2>/dev/null; umount '$T/lvmnt' 2>/dev/null; vgremove -f $VG >/dev/null 2>&1; losetup -d $LOOP"
  pvcreate -q "$LOOP" >/dev/null && vgcreate -q "$VG" "$LOOP" >/dev/null && lvcreate -q -L 100M -n data "$VG" >/dev/null ||
    fail "LVM setup on $LOOP"
  mkfs.ext4 -q "/dev/$VG/data"
  mkdir -p "$T/lvmnt"
  mount "/dev/$VG/data" "$T/lvmnt"
  cp -a "$DATA/docs" "$T/lvmnt/"
  policy "$T/lvm.yaml" "{ type: volume, source: $VG/data, snapshot_size: 50M, freeze: true }"
  expect_exit 0 cairn --config "$T/lvm.yaml" --json backup --service vol
  assert_eq "lvm $T/lvmnt true" "$(jq -r '.engine | "\(.driver) \(.source) \(.freeze)"' "$OUT_FILE")"
  ID=$(jq -r .snapshot_id "$OUT_FILE")
  assert_eq "data" "$(lvs --noheadings -o lv_name "$VG" | tr -d ' ')" "LVs after the backup"
  expect_exit 0 cairn --repo "$REPO" restore "$ID" --target "$T/rl"
  assert_same_content "$T/lvmnt/docs" "$T/rl$T/lvmnt/docs"
  timeout 20 touch "$T/lvmnt/after" || fail "the LV's file system stayed frozen"
fi

step "ZFS"
if ! command -v zpool >/dev/null; then
  skip "ZFS: zfsutils-linux is not installed (Debian contrib; not in scripts/setup)"
elif ! grep -qw zfs /proc/filesystems; then
  skip "ZFS: this kernel has no zfs module"
else
  POOL=cairne2e$$
  truncate -s 256M "$T/zfs.img"
  on_exit "zpool destroy -f $POOL 2>/dev/null"
  zpool create -m "$T/zfsmnt" "$POOL" "$T/zfs.img" || fail "zpool create"
  zfs create "$POOL/data"
  cp -a "$DATA/docs" "$T/zfsmnt/data/"
  policy "$T/zfs.yaml" "{ type: volume, source: $POOL/data }"
  expect_exit 0 cairn --config "$T/zfs.yaml" --json backup --service vol
  assert_eq "zfs $T/zfsmnt/data" "$(jq -r '.engine | "\(.driver) \(.source)"' "$OUT_FILE")"
  ID=$(jq -r .snapshot_id "$OUT_FILE")
  assert_eq "" "$(zfs list -H -t snapshot -o name -r "$POOL")" "ZFS snapshots after the backup"
  expect_exit 0 cairn --repo "$REPO" restore "$ID" --target "$T/rz"
  assert_same_content "$T/zfsmnt/data/docs" "$T/rz$T/zfsmnt/data/docs"
fi
