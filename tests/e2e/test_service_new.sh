# cairn service new: scaffolded entries pass `policy validate` for every
# engine (files, exec, postgres physical and logical, mariadb, redis, sqlite,
# volume) in every tier; the existing file's text and comments stay intact;
# an existing name, a flow-style services block and bad options are refused
# without touching the file; --print; a new file is created. Every template
# in docs/templates/ validates.
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
  for spec in files exec postgres:physical postgres:logical mariadb redis sqlite volume; do
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
assert_eq 33 "$(jq '.services | length' <<<"$OUT")" "services"
assert_eq "15m 1h" "$(jq -r '.services["s0-files-critical"].objectives | "\(.rpo) \(.rto)"' <<<"$OUT")" "critical objectives"
assert_eq "0 */6 * * *" "$(jq -r '.services["s2-postgres-critical"].schedule' <<<"$OUT")" "critical physical PG"
assert_eq "true" "$(jq -r '.services["s2-postgres-critical"].engine.wal_archiving' <<<"$OUT")" "WAL archiving"
assert_eq "0 3 * * 0" "$(jq -r '.services["s0-files-critical"].drill.schedule' <<<"$OUT")" "weekly drill"
assert_eq "1d 1d" "$(jq -r '.services["s24-files-low"].objectives | "\(.rpo) \(.rto)"' <<<"$OUT")" "low objectives"
assert_eq "0 5 1 * *" "$(jq -r '.services["s24-files-low"].drill.schedule' <<<"$OUT")" "monthly drill"
assert_eq '{"daily":7,"monthly":3,"weekly":4}' "$(jq -c '.services["s24-files-low"].retention' <<<"$OUT")" "retention"
assert_eq "team-x" "$(jq -r '.services["s1-exec-critical"].owner' <<<"$OUT")" "owner"
assert_eq "/srv/backup/fleet" "$(jq -r '.services["s1-exec-critical"].repository.location' <<<"$OUT")" "inherited repo"
assert_eq "volume auto /srv/s7-volume-critical" \
  "$(jq -r '.services["s7-volume-critical"].engine | "\(.type) \(.driver) \(.source)"' <<<"$OUT")" "volume engine"
assert_eq "*/15 * * * *" "$(jq -r '.services["s7-volume-critical"].schedule' <<<"$OUT")" "volume schedule"
assert_eq "redis 127.0.0.1 6379" "$(jq -r '.services["s5-redis-critical"].engine | "\(.type) \(.host) \(.port)"' <<<"$OUT")" "redis engine"
assert_eq "/var/lib/s6-sqlite-critical/s6-sqlite-critical.db" "$(jq -r '.services["s6-sqlite-critical"].engine.path' <<<"$OUT")" "sqlite path"

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
  "redis:{ type: redis, host: 127.0.0.1, port: 6379 }" "sqlite:{ type: sqlite, path: /var/lib/db1/db1.db }" \
  "volume:{ type: volume, driver: auto, source: /srv/db1 }"; do
  # The engines exist: the entry validates (a refused one would be exit 3 with the reason).
  expect_exit 0 C service new db1 --engine "${spec%%:*}" --print
  assert_contains "$OUT" "engine: ${spec#*:}"
  assert_eq "" "$ERR" "--print ${spec%%:*} stderr"
done
expect_exit 2 C service new db1 --engine volume --mode physical
assert_contains "$ERR" "--mode applies to the postgres engine only"
cmp -s "$CFG" "$T/before.yaml" || fail "--print changed the file"

step "a missing policy file is created"
mkdir -p "$T/new"
expect_exit 0 cairn --config "$T/new/cairn.yaml" service new first --engine files --tier low
expect_exit 0 cairn --config "$T/new/cairn.yaml" policy validate
assert_contains "$(cat "$T/new/cairn.yaml")" "location: /var/backups/cairn"

step "every template in docs/templates validates"
for t in files exec postgres-physical postgres-logical mongodb mariadb redis sqlite volume; do
  [[ -f $DOCS/templates/$t.yaml ]] || fail "missing template $t"
done
n=0
for f in "$DOCS"/templates/*.yaml; do
  BILLING_PG_PASSWORD=x expect_exit 0 cairn --config "$f" policy validate
  assert_not_contains "$OUT$ERR" "not available" "$(basename "$f")"
  n=$((n + 1))
done
assert_eq 9 "$n" "templates"
