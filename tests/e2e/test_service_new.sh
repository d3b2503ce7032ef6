# cairn service new: scaffolded entries pass `policy validate` for every
# engine this cairn validates (files, exec, postgres physical and logical)
# in every tier; the existing file's text and comments stay intact; an
# existing name, a flow-style services block and bad options are refused
# without touching the file; --print; a new file is created. The templates
# in docs/templates/ validate (files, exec, postgres, mongodb via exec).
# mariadb/redis/sqlite are validated by the branches that add those engines;
# here only their documented fields are checked.
# Usage: bash tests/e2e/test_service_new.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
DOCS=$(cd "$(dirname -- "${BASH_SOURCE[0]}")/../../docs" && pwd)

CFG=$T/cairn.yaml
cat >"$CFG" <<'YAML'
# Fleet policy — this comment and the layout below must survive.
version: 1
repository:
  location: /srv/backup/fleet   # shared
  password_file: /etc/cairn/fleet.password

services:
  web:            # the shop's front end
    owner: team-web
    objectives: { rpo: 1d, rto: 4h }
    engine: { type: files, paths: [/srv/www] }
    schedule: "0 1,13 * * *"
    # last line of web

# Daemon settings follow.
daemon:
  timezone: Europe/Berlin
YAML
cp "$CFG" "$T/original.yaml"
C() { cairn --config "$CFG" "$@"; }

step "every engine x tier validates (in Europe/Berlin, DST included)"
n=0
for tier in critical high medium low; do
  for spec in files exec postgres:physical postgres:logical; do
    engine=${spec%%:*}
    mode=()
    [[ $spec == *:* ]] && mode=(--mode "${spec#*:}")
    name="s$((n++))-$engine-$tier"
    expect_exit 0 C service new "$name" --engine "$engine" --tier "$tier" "${mode[@]}" --owner team-x
    assert_contains "$OUT" "added service $name"
    expect_exit 0 C policy validate
  done
done
expect_exit 0 C --json policy show
assert_eq 17 "$(jq '.services | length' <<<"$OUT")" "services"
assert_eq "15m 1h" "$(jq -r '.services["s0-files-critical"].objectives | "\(.rpo) \(.rto)"' <<<"$OUT")" "critical objectives"
assert_eq "0 */6 * * *" "$(jq -r '.services["s2-postgres-critical"].schedule' <<<"$OUT")" "critical physical PG"
assert_eq "true" "$(jq -r '.services["s2-postgres-critical"].engine.wal_archiving' <<<"$OUT")" "WAL archiving"
assert_eq "0 3 * * 0" "$(jq -r '.services["s0-files-critical"].drill.schedule' <<<"$OUT")" "weekly drill"
assert_eq "1d 1d" "$(jq -r '.services["s12-files-low"].objectives | "\(.rpo) \(.rto)"' <<<"$OUT")" "low objectives"
assert_eq "0 5 1 * *" "$(jq -r '.services["s12-files-low"].drill.schedule' <<<"$OUT")" "monthly drill"
assert_eq '{"daily":7,"monthly":3,"weekly":4}' "$(jq -c '.services["s12-files-low"].retention' <<<"$OUT")" "retention"
assert_eq "team-x" "$(jq -r '.services["s1-exec-critical"].owner' <<<"$OUT")" "owner"
assert_eq "/srv/backup/fleet" "$(jq -r '.services["s1-exec-critical"].repository.location' <<<"$OUT")" "inherited repo"

step "the original text is untouched, the entries are inside services"
python3 - "$T/original.yaml" "$CFG" <<'PY' || fail "original text changed"
import sys
orig = open(sys.argv[1]).read().splitlines()
new = open(sys.argv[2]).read().splitlines()
it = iter(new)
for line in orig:
    if not any(line == n for n in it):
        sys.exit(f"line lost or reordered: {line!r}")
daemon = new.index("daemon:")
assert new[daemon - 1] == "# Daemon settings follow.", new[daemon - 2:daemon + 1]
assert all(not l.startswith("  s") for l in new[daemon:]), "entry after daemon:"
PY

step "the scaffolded exec command fails loudly until replaced: no snapshot"
expect_exit 0 C service new job --engine exec --repository "$T/repo" --password-file "$T/pass"
printf '%s\n' "$CAIRN_PASSWORD" >"$T/pass"
new_repo "$T/repo"
expect_exit 1 C backup --service job
assert_contains "$ERR" "service job: set engine.command in cairn.yaml"
assert_eq 0 "$(snapshot_count "$T/repo")" "snapshots"

step "refusals leave the file as it was"
cp "$CFG" "$T/before.yaml"
expect_exit 2 C service new web --engine files
assert_contains "$ERR" 'service "web" already exists'
expect_exit 2 C service new Bad_Name --engine files
expect_exit 2 C service new x --engine mongodb
expect_exit 2 C service new x --engine files --tier urgent
expect_exit 2 C service new x --engine files --mode logical
cmp -s "$CFG" "$T/before.yaml" || fail "a refused service new changed the file"
printf 'repository: /r\nservices: {a: {owner: x}}\n' >"$T/flow.yaml"
expect_exit 2 cairn --config "$T/flow.yaml" service new b --engine files
assert_contains "$ERR" "flow style"

step "--print: the entry on stdout, the file unchanged"
expect_exit 0 C service new api --engine postgres --tier high --mode logical --print
assert_contains "$OUT" "  api:"
assert_contains "$OUT" 'dsn: "host=/run/postgresql user=postgres dbname=api"'
cmp -s "$CFG" "$T/before.yaml" || fail "--print changed the file"
for spec in "mariadb:{ type: mariadb, mode: logical, socket: /run/mysqld/mysqld.sock, user: root }" \
  "redis:{ type: redis, host: 127.0.0.1, port: 6379 }" "sqlite:{ type: sqlite, path: /var/lib/db1/db1.db }"; do
  # Validated once the engine exists (exit 0); before that, exit 3 with the reason.
  rc=0
  C service new db1 --engine "${spec%%:*}" --print >"$T/print.out" 2>"$T/print.err" || rc=$?
  [[ $rc == 0 || $rc == 3 ]] || fail "--print ${spec%%:*}: exit $rc: $(cat "$T/print.err")"
  assert_contains "$(cat "$T/print.out")" "engine: ${spec#*:}"
done

step "a missing policy file is created"
mkdir -p "$T/new"
expect_exit 0 cairn --config "$T/new/cairn.yaml" service new first --engine files --tier low
expect_exit 0 cairn --config "$T/new/cairn.yaml" policy validate
assert_contains "$(cat "$T/new/cairn.yaml")" "location: /var/backups/cairn"

step "docs/templates validate (files, exec, postgres, mongodb via exec)"
for t in files exec postgres-physical postgres-logical mongodb; do
  BILLING_PG_PASSWORD=x expect_exit 0 cairn --config "$DOCS/templates/$t.yaml" policy validate
done
for t in mariadb redis sqlite; do
  [[ -f $DOCS/templates/$t.yaml ]] || fail "missing template $t"
done
