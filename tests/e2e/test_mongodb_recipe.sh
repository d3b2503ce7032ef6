# The MongoDB recipe of docs/engines/mongodb.md (the exec engine running
# `mongodump --archive --oplog`) with stand-in mongodump / mongorestore
# programs, since no MongoDB server or tools are installable here: the
# archive streams into a snapshot and restores byte for byte through
# `cairn dump | mongorestore --archive`; a dump that exits non-zero, or one
# that writes nothing, makes no snapshot; the drill's command check runs.
# Usage: bash tests/e2e/test_mongodb_recipe.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
unset CAIRN_CONFIG

REPO=$T/repo
new_repo "$REPO"
mkdir -p "$T/bin" "$T/scratch"
random_file "$T/archive.src" $((5 * 1024 * 1024))
# Stand-ins with the real tools' interface: the archive on stdout / stdin.
cat >"$T/bin/mongodump" <<'SH'
#!/bin/sh
# Requires the flags of the recipe; MONGO_FAIL=1 fails halfway, MONGO_EMPTY=1 writes nothing.
case " $* " in *" --archive "*) ;; *) echo "mongodump: --archive missing" >&2; exit 2 ;; esac
case " $* " in *" --oplog "*) ;; *) echo "mongodump: --oplog missing" >&2; exit 2 ;; esac
[ -n "$MONGO_EMPTY" ] && exit 0
if [ -n "$MONGO_FAIL" ]; then head -c 1000000 "$MONGO_SOURCE"; echo "Failed: connection reset" >&2; exit 1; fi
cat "$MONGO_SOURCE"
SH
cat >"$T/bin/mongorestore" <<'SH'
#!/bin/sh
case " $* " in *" --archive "*) ;; *) echo "mongorestore: --archive missing" >&2; exit 2 ;; esac
case " $* " in *" --oplogReplay "*) ;; *) echo "mongorestore: --oplogReplay missing" >&2; exit 2 ;; esac
cat >"$MONGO_RESTORED"
SH
chmod +x "$T/bin/mongodump" "$T/bin/mongorestore"
export PATH="$T/bin:$PATH" MONGO_SOURCE="$T/archive.src" MONGO_RESTORED="$T/archive.restored"
cat >"$T/cairn.yaml" <<YAML
repository: $REPO
services:
  catalog:
    owner: team-catalog
    objectives: { rpo: 1h, rto: 4h }
    engine:
      type: exec
      command: [mongodump, --archive, --oplog]
      filename: catalog.archive
    schedule: "0 * * * *"
    drill: { checks: ["exec: test -s ./catalog.archive"] }
daemon: { state: $T/state.db }
YAML
M() { cairn --config "$T/cairn.yaml" "$@"; }
expect_exit 0 M policy validate

step "the archive streams into a snapshot and restores byte for byte"
expect_exit 0 M --json backup --service catalog
cairn --repo "$REPO" dump latest:/catalog.archive --service catalog | mongorestore --archive --oplogReplay ||
  fail "cairn dump | mongorestore"
assert_file_same "$T/archive.src" "$T/archive.restored"
expect_exit 0 M drill run --service catalog --scratch "$T/scratch"
assert_contains "$OUT" "PASSED"

step "a failing or empty dump makes no snapshot"
n=$(snapshot_count "$REPO")
MONGO_FAIL=1 expect_exit 1 M backup --service catalog
assert_contains "$ERR" "connection reset"
MONGO_EMPTY=1 expect_exit 1 M backup --service catalog
assert_eq "$n" "$(snapshot_count "$REPO")" "snapshots after a failed and an empty dump"
echo PASS
