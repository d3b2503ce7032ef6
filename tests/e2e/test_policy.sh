# The service catalog (cairn.yaml): policy validate/show, backup --service and
# forget --service run from the policy (files and exec engines, hooks,
# timeouts, per-service repositories and password files), and
# docs/cairn.schema.json against the example fleet of docs/configuration.md.
# Usage: bash tests/e2e/test_policy.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

SRC=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
unset CAIRN_CONFIG CAIRN_KEY_FILE

REPO=$T/repo
new_repo "$REPO"
mkdir -p "$T/web/sub"
echo "index" >"$T/web/index.html"
echo "style" >"$T/web/sub/site.css"
random_file "$T/data.bin" $((3 * 1024 * 1024))

# A second repository with its own password in a file; CAIRN_PASSWORD (set
# by lib.sh) is a different password that cannot open it.
REPO2=$T/repo2
echo "the vault's own password" >"$T/repo2.pw"
CAIRN_PASSWORD="the vault's own password" new_repo "$REPO2"

CFG=$T/cairn.yaml
cat >"$CFG" <<EOF
version: 1
repository: $REPO
defaults:
  schedule: "@hourly"
services:
  web:
    owner: team-web
    objectives: {rpo: 1h, rto: 4h}
    engine:
      type: files
      paths: [$T/web]
    retention: {last: 2}
  dump:
    owner: team-db
    objectives: {rpo: 1h, rto: 4h}
    engine:
      type: exec
      command: [cat, $T/data.bin]
      filename: data.bin
  failing:
    owner: team-db
    objectives: {rpo: 1h, rto: 4h}
    engine:
      type: exec
      command: "echo partial; exit 3"
    hooks:
      post: ['env | grep -E "^CAIRN_(REPOSITORY|RESULT|SERVICE|SNAPSHOT_ID)=" | sort > $T/failing-post.env']
  silent:
    owner: team-db
    objectives: {rpo: 1h, rto: 4h}
    engine: {type: exec, command: "true"}
  slow:
    owner: team-db
    objectives: {rpo: 1h, rto: 4h}
    timeout: 2s
    engine:
      type: exec
      command: "echo started; sleep 300 & echo \$! > $T/slow-child.pid; wait"
  hooked:
    owner: team-web
    objectives: {rpo: 1h, rto: 4h}
    engine: {type: files, paths: [$T/web/sub]}
    hooks:
      pre: ['echo "pre \$CAIRN_SERVICE" >> $T/hooks.log']
      post: ['env | grep -E "^CAIRN_(REPOSITORY|RESULT|SERVICE|SNAPSHOT_ID)=" | sort > $T/hooked-post.env', 'echo post >> $T/hooks.log']
  prefail:
    owner: team-web
    objectives: {rpo: 1h, rto: 4h}
    engine: {type: files, paths: [$T/web]}
    hooks:
      pre: ['echo "pre-hook says no" >&2; exit 4']
      post: ['touch $T/prefail-post-ran']
  postfail:
    owner: team-web
    objectives: {rpo: 1h, rto: 4h}
    engine: {type: files, paths: [$T/web/sub]}
    hooks:
      post: ['exit 5']
  vault:
    owner: team-sec
    objectives: {rpo: 1h, rto: 4h}
    repository:
      location: $REPO2
      password_file: $T/repo2.pw
    engine: {type: exec, command: [cat, $T/data.bin], filename: secret.bin}
EOF
P() { cairn --config "$CFG" "$@"; }
count() { snapshot_count "$1"; }
count_service() { cairn --repo "$1" --json snapshots --service "$2" | jq length; }

step "policy validate: a valid file"
expect_exit 0 P policy validate
assert_eq "$CFG: 9 service(s), policy valid" "$OUT" "validate output"
assert_eq "" "$ERR" "validate stderr"
expect_exit 0 P --json policy validate
assert_eq '{"diagnostics":[],"file":"'"$CFG"'","services":9,"valid":true}' "$(jq -cS . "$OUT_FILE")" \
  "validate --json of a valid file"

step "policy validate: errors at file:line:column, exit 2"
cat >"$T/bad.yaml" <<'EOF'
version: 1
repository: /srv/backup
servics: {}
services:
  shop:
    owner: team-shop
    tier: critical
    objectives: {rpo: 1h, rto: 4h}
    schedule: "0 3 * * *"
    engine:
      type: postgres
      mode: logical
      dsn: "host=db user=backup password=hunter2"
    retention: {last: 0}
  files:
    owner: team-web
    objectives: {rpo: 1d, rto: 4h}
    schedule: "61 * * * *"
    engine: {type: file, paths: [/srv/www]}
EOF
expect_exit 2 cairn --config "$T/bad.yaml" policy validate
assert_eq "" "$OUT" "stdout of validate with errors"
want="$T/bad.yaml:3:1: error: servics: unknown key \"servics\" (did you mean \"services\"?)
$T/bad.yaml:6:5: error: service \"shop\": drill.schedule: a critical service needs a restore drill schedule (ADR-025: recovery testing is mandatory)
$T/bad.yaml:9:15: error: service \"shop\": schedule: \"0 3 * * *\" leaves up to 1d between backups, more than objectives.rpo 1h; run it more often or use mode: physical with WAL archiving
$T/bad.yaml:13:12: error: service \"shop\": engine.dsn: a secret is written inline; reference an environment variable instead (e.g. \${PG_PASSWORD}) or use a password file
$T/bad.yaml:14:16: error: service \"shop\": retention: retention keeps nothing: set at least one of last, hourly, daily, weekly, monthly, yearly, within or tags
$T/bad.yaml:18:15: error: service \"files\": schedule: minute field \"61\": value out of range 0-59
$T/bad.yaml:19:20: error: service \"files\": engine.type: unknown engine \"file\" (files, exec, postgres, mariadb, redis, sqlite or volume); did you mean \"files\"?
$T/bad.yaml: 7 error(s), 0 warning(s)"
assert_eq "$want" "$ERR" "validate stderr"
expect_exit 2 cairn --config "$T/bad.yaml" --json policy validate
assert_eq "" "$ERR" "stderr of validate --json"
assert_eq false "$(json_get "$OUT_FILE" .valid)" "valid"
assert_eq 2 "$(json_get "$OUT_FILE" .services)" "services"
assert_eq 7 "$(json_get "$OUT_FILE" '.diagnostics | length')" "number of diagnostics"
assert_eq '{"column":15,"field":"schedule","file":"'"$T/bad.yaml"'","line":18,"message":"minute field \"61\": value out of range 0-59","service":"files","severity":"error"}' \
  "$(jq -cS '.diagnostics[5]' "$OUT_FILE")" "one diagnostic as JSON"
assert_eq '{"column":1,"field":"servics","line":3,"service":"","severity":"error"}' \
  "$(jq -cS '.diagnostics[0] | del(.message, .file)' "$OUT_FILE")" "a fleet-wide diagnostic as JSON"
# Commands that use the policy refuse an invalid one with every error listed.
expect_exit 2 cairn --config "$T/bad.yaml" --repo "$REPO" backup --service shop
assert_contains "$ERR" "the policy file has errors:"
assert_contains "$ERR" "$T/bad.yaml:19:20: error: service \"files\": engine.type"

step "policy validate: only warnings, exit 3"
cat >"$T/warn.yaml" <<EOF
repository: $REPO
services:
  job:
    owner: team-ops
    objectives: {rpo: 1d, rto: 4h}
    schedule: "@daily"
    engine:
      type: exec
      command: [pg_dumpall]
      env: {PGPASSWORD: "\${CAIRN_E2E_UNSET_PASSWORD}"}
EOF
unset CAIRN_E2E_UNSET_PASSWORD
expect_exit 3 cairn --config "$T/warn.yaml" policy validate
assert_eq "$T/warn.yaml:10:25: warning: service \"job\": engine.env.PGPASSWORD: environment variable CAIRN_E2E_UNSET_PASSWORD is not set" \
  "$ERR" "validate stderr with a warning"
assert_eq "$T/warn.yaml: 1 service(s), policy valid (1 warning(s))" "$OUT" "validate stdout with a warning"
expect_exit 3 cairn --config "$T/warn.yaml" --json policy validate
assert_eq true "$(json_get "$OUT_FILE" .valid)" "valid with warnings"
assert_eq warning "$(json_get "$OUT_FILE" '.diagnostics[0].severity')" "severity"
CAIRN_E2E_UNSET_PASSWORD=x expect_exit 0 cairn --config "$T/warn.yaml" policy validate

step "policy validate: a missing file"
expect_exit 2 cairn --config "$T/nope.yaml" policy validate
assert_contains "$ERR" "$T/nope.yaml: error: cannot read the policy file: No such file or directory"

step "config lookup: --config > CAIRN_CONFIG > ./cairn.yaml"
mkdir -p "$T/cwd"
cp "$T/warn.yaml" "$T/cwd/cairn.yaml"
(cd "$T/cwd" && expect_exit 3 cairn policy validate && assert_eq "cairn.yaml: 1 service(s), policy valid (1 warning(s))" "$OUT")
(cd "$T/cwd" && CAIRN_CONFIG=$CFG expect_exit 0 cairn policy validate && assert_contains "$OUT" "$CFG: 9 service(s)")
(cd "$T/cwd" && CAIRN_CONFIG=$T/warn.yaml expect_exit 2 cairn --config "$T/bad.yaml" policy validate)

step "policy show"
expect_exit 0 P policy show --service web
assert_contains "$OUT" "services:"
assert_contains "$OUT" "  web:"
assert_contains "$OUT" "tier: medium"
assert_contains "$OUT" "schedule: \"@hourly\""
assert_contains "$OUT" "timeout: 6h"
assert_not_contains "$OUT" "dump:"
expect_exit 0 P --json policy show --service web
assert_eq '["web"]' "$(jq -c '.services | keys' "$OUT_FILE")" "services in show --service web"
web=$(jq -cS '.services.web' "$OUT_FILE")
assert_eq '{"drill":{"checks":[],"schedule":""},"engine":{"exclude":[],"one_file_system":false,"paths":["'"$T/web"'"],"type":"files"},"hooks":{"post":[],"pre":[]},"objectives":{"rpo":"1h","rto":"4h"},"owner":"team-web","repository":{"location":"'"$REPO"'"},"retention":{"last":2},"retries":2,"retry_delay":"1m","schedule":"@hourly","tags":[],"tier":"medium","timeout":"6h"}' \
  "$web" "policy show --json --service web"
expect_exit 0 P --json policy show
assert_eq 9 "$(jq '.services | length' "$OUT_FILE")" "services in policy show"
assert_eq "failing.dump" "$(jq -r '.services.failing.engine.filename' "$OUT_FILE")" "default exec file name"
assert_eq '{"daily":7,"monthly":12,"weekly":4}' "$(jq -cS '.services.dump.retention' "$OUT_FILE")" "default retention"
assert_eq '{"max_unused":"5%","schedule":"0 4 * * 0"}' "$(jq -cS '.daemon.prune' "$OUT_FILE")" "default prune"
assert_eq '["/bin/sh","-c","true"]' "$(jq -c '.services.silent.engine.command' "$OUT_FILE")" "a command string runs through sh"
assert_eq "$T/repo2.pw" "$(jq -r '.services.vault.repository.password_file' "$OUT_FILE")" "vault's password file"
expect_exit 2 P policy show --service nope
assert_contains "$ERR" "no service \"nope\""

step "backup --service: files"
expect_exit 0 P --json backup --service web
snap1=$(json_get "$OUT_FILE" .snapshot_id)
assert_eq web "$(json_get "$OUT_FILE" .service)" "service in the backup result"
assert_eq 2 "$(json_get "$OUT_FILE" .summary.files_new)" "new files in the first backup"
assert_eq web "$(cairn --repo "$REPO" --json snapshots | jq -r --arg s "$snap1" '.[] | select(.id == $s) | .service')" \
  "service of the snapshot"
assert_eq "[\"$T/web\"]" "$(cairn --repo "$REPO" --json snapshots | jq -c --arg s "$snap1" '.[] | select(.id == $s) | .paths')" \
  "paths of the snapshot"
expect_exit 0 P --json backup --service web
snap2=$(json_get "$OUT_FILE" .snapshot_id)
assert_eq 0 "$(json_get "$OUT_FILE" .summary.files_new)" "new files in the second backup"
assert_eq 2 "$(json_get "$OUT_FILE" .summary.files_unmodified)" "unmodified files in the second backup"
assert_eq "$snap1" "$(cairn --repo "$REPO" --json snapshots | jq -r --arg s "$snap2" '.[] | select(.id == $s) | .parent')" \
  "parent of the second backup"
expect_exit 0 cairn --repo "$REPO" restore "$snap2" --target "$T/restore-web"
assert_same_content "$T/web" "$T/restore-web$T/web"
# Text output names the snapshot.
expect_exit 0 P backup --service web
assert_contains "$OUT" "snapshot "
assert_contains "$OUT" " saved"

step "backup --service: exec, byte-identical"
expect_exit 0 P --json backup --service dump
snap=$(json_get "$OUT_FILE" .snapshot_id)
assert_eq dump "$(json_get "$OUT_FILE" .service)" "service of the exec backup"
assert_eq exec "$(json_get "$OUT_FILE" .engine.type)" "engine of the exec backup"
cairn --repo "$REPO" dump "$snap:/data.bin" >"$T/data.out" || fail "dump of the exec backup failed"
assert_file_same "$T/data.bin" "$T/data.out"
expect_exit 0 cairn --repo "$REPO" restore "$snap" --target "$T/restore-dump" --verify
assert_file_same "$T/data.bin" "$T/restore-dump/data.bin"
expect_exit 0 cairn --repo "$REPO" ls "$snap"
assert_eq "/data.bin" "$OUT" "ls of the exec snapshot"

step "backup --service: a failing command writes no snapshot; post hooks see the failure"
n0=$(count "$REPO")
expect_exit 1 P backup --service failing
assert_contains "$ERR" "status 3"
assert_contains "$ERR" "no snapshot written"
assert_eq "$n0" "$(count "$REPO")" "snapshot count after a failing command"
assert_eq "CAIRN_REPOSITORY=$REPO
CAIRN_RESULT=failure
CAIRN_SERVICE=failing" "$(cat "$T/failing-post.env")" "post hook environment after a failure"

step "backup --service: a silent command writes no snapshot"
expect_exit 1 P backup --service silent
assert_contains "$ERR" "produced no output"
assert_eq "$n0" "$(count "$REPO")" "snapshot count after a silent command"

step "backup --service: an unset \${VAR} fails the run, exit 2"
cat >"$T/unset.yaml" <<EOF
repository: $REPO
services:
  unset-var:
    owner: team-db
    objectives: {rpo: 1h, rto: 4h}
    schedule: "@hourly"
    engine: {type: exec, command: [echo, "\${CAIRN_E2E_NOT_SET}"]}
    hooks:
      post: ['echo "\$CAIRN_RESULT" > $T/unset-var-post']
EOF
U() { cairn --config "$T/unset.yaml" "$@"; }
unset CAIRN_E2E_NOT_SET
expect_exit 2 U backup --service unset-var
assert_contains "$ERR" "service unset-var: environment variable CAIRN_E2E_NOT_SET is not set"
assert_eq "$n0" "$(count "$REPO")" "snapshot count after an unset variable"
assert_eq failure "$(cat "$T/unset-var-post")" "CAIRN_RESULT after an unset variable"
assert_contains "$ERR" "warning: service \"unset-var\": engine.command: environment variable CAIRN_E2E_NOT_SET is not set"
CAIRN_E2E_NOT_SET=set-now expect_exit 0 U --json backup --service unset-var
assert_eq set-now "$(cairn --repo "$REPO" dump "$(json_get "$OUT_FILE" .snapshot_id):/unset-var.dump")" \
  "command output with the variable set"
n0=$(count "$REPO")

step "backup --service: timeout kills the command and its children"
start=$SECONDS
expect_exit 1 P backup --service slow
elapsed=$((SECONDS - start))
assert_contains "$ERR" "timed out after 2"
assert_contains "$ERR" "no snapshot written"
((elapsed < 30)) || fail "the timed-out backup took ${elapsed}s"
assert_eq "$n0" "$(count "$REPO")" "snapshot count after a timeout"
child=$(cat "$T/slow-child.pid")
[[ -n $child ]] || fail "the slow command did not record its child"
for _ in $(seq 1 50); do
  kill -0 "$child" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$child" 2>/dev/null; then
  kill -9 "$child" 2>/dev/null || true
  fail "the timed-out command's child $child is still running"
fi

step "hooks: pre and post, with the run's facts"
rm -f "$T/hooks.log"
expect_exit 0 P --json backup --service hooked
snap=$(json_get "$OUT_FILE" .snapshot_id)
assert_eq "pre hooked
post" "$(cat "$T/hooks.log")" "hook order"
assert_eq "CAIRN_REPOSITORY=$REPO
CAIRN_RESULT=success
CAIRN_SERVICE=hooked
CAIRN_SNAPSHOT_ID=$snap" "$(cat "$T/hooked-post.env")" "post hook environment"

step "hooks: a failing pre hook means no backup"
n0=$(count "$REPO")
expect_exit 1 P backup --service prefail
assert_contains "$ERR" "pre-hook says no"
assert_contains "$ERR" "status 4"
assert_eq "$n0" "$(count "$REPO")" "snapshot count after a failing pre hook"
[[ ! -e $T/prefail-post-ran ]] || fail "post hooks ran although the pre hook failed"

step "hooks: a failing post hook keeps the snapshot, exit 3"
expect_exit 3 P --json backup --service postfail
assert_eq $((n0 + 1)) "$(count "$REPO")" "snapshot count after a failing post hook"
assert_contains "$(jq -r '.warnings[]' "$OUT_FILE")" "post hook 'exit 5'"

step "forget --service applies the policy's retention"
for _ in 1 2; do expect_exit 0 P backup --service web; done
assert_eq 5 "$(count_service "$REPO" web)" "web snapshots before forget"
others=$(($(count "$REPO") - 5))
expect_exit 0 P --json forget --service web --dry-run
assert_eq 3 "$(jq '.groups[0].remove | length' "$OUT_FILE")" "snapshots forget --dry-run would remove"
assert_eq 5 "$(count_service "$REPO" web)" "web snapshots after a dry run"
expect_exit 0 P --json forget --service web
assert_eq 2 "$(jq '.groups[0].keep | length' "$OUT_FILE")" "snapshots kept by retention last: 2"
assert_eq '["last"]' "$(jq -c '.groups[0].keep[0].reasons' "$OUT_FILE")" "reason"
assert_eq 2 "$(count_service "$REPO" web)" "web snapshots after forget"
assert_eq "$others" "$(($(count "$REPO") - 2))" "other services' snapshots after forget --service web"
expect_exit 0 cairn --repo "$REPO" check
# Explicit --keep-* options replace the policy's rules.
expect_exit 0 P --repo "$REPO" forget --service web --keep-last 1
assert_eq 1 "$(count_service "$REPO" web)" "web snapshots after forget --keep-last 1"
expect_exit 2 P forget --service nope
assert_contains "$ERR" "no service \"nope\""

step "per-service repository with its own password file"
[[ $CAIRN_PASSWORD != "the vault's own password" ]] || fail "test setup: the passwords must differ"
expect_exit 12 cairn --repo "$REPO2" snapshots  # CAIRN_PASSWORD cannot open it
expect_exit 0 P --json backup --service vault
snap=$(json_get "$OUT_FILE" .snapshot_id)
assert_eq 1 "$(CAIRN_PASSWORD="the vault's own password" count "$REPO2")" "snapshots in the vault repository"
assert_eq 0 "$(count_service "$REPO" vault)" "vault snapshots in the shared repository"
CAIRN_PASSWORD_FILE=$T/repo2.pw CAIRN_PASSWORD='' cairn --repo "$REPO2" dump "$snap:/secret.bin" >"$T/secret.out" ||
  fail "dump from the vault repository failed"
assert_file_same "$T/data.bin" "$T/secret.out"
# CAIRN_REPOSITORY does not override the policy's repository; --repo does.
CAIRN_REPOSITORY=$REPO expect_exit 0 P backup --service vault
assert_eq 2 "$(CAIRN_PASSWORD="the vault's own password" count "$REPO2")" "snapshots in the vault repository"
expect_exit 0 P --repo "$REPO" --json backup --service vault
assert_eq 1 "$(count_service "$REPO" vault)" "vault snapshots in --repo"

step "--repo on the command line wins over the policy"
REPO3=$T/repo3
new_repo "$REPO3"
n_repo=$(count "$REPO")
expect_exit 0 P --repo "$REPO3" --json backup --service web
assert_eq 1 "$(count_service "$REPO3" web)" "web snapshots in --repo"
assert_eq "$n_repo" "$(count "$REPO")" "snapshots in the policy's repository"

step "unknown service: exit 2 with a suggestion"
expect_exit 2 P backup --service wbe
assert_contains "$ERR" "no service \"wbe\" in $CFG (did you mean \"web\"?)"
expect_exit 2 P --json backup --service wbe
assert_eq "invalid argument" "$(json_get "$OUT_FILE" .code)" "error code"

step "docs/cairn.schema.json: the example fleet of docs/configuration.md"
PY=
for p in /usr/bin/python3 python3; do
  if "$p" -c 'import yaml; from jsonschema import Draft202012Validator' 2>/dev/null; then
    PY=$p
    break
  fi
done
[[ -n $PY ]] || fail "python3 with the jsonschema and yaml modules is needed (Debian: python3-jsonschema python3-yaml; scripts/setup installs them)"
# The first ```yaml block after the <!-- example-fleet --> marker.
awk '/<!-- example-fleet -->/ {m = 1; next} m && /^```yaml$/ {p = 1; next} p && /^```$/ {exit} p' \
  "$SRC/docs/configuration.md" >"$T/example.yaml"
[[ -s $T/example.yaml ]] || fail "no example fleet found in docs/configuration.md"
grep -q 'type: postgres' "$T/example.yaml" || fail "the example fleet has no PostgreSQL service"
grep -q 'type: files' "$T/example.yaml" || fail "the example fleet has no files service"
grep -q 'mongodump' "$T/example.yaml" || fail "the example fleet has no MongoDB-by-exec service"
cat >"$T/schema_check.py" <<'EOF'
import json, sys
import yaml
from jsonschema import Draft202012Validator

schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
status = 0
for path in sys.argv[2:]:
    doc = yaml.safe_load(open(path))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    for e in errors:
        print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    status = status or (1 if errors else 0)
sys.exit(status)
EOF
schema=$SRC/docs/cairn.schema.json
expect_exit 0 "$PY" "$T/schema_check.py" "$schema" "$T/example.yaml" "$CFG" "$T/warn.yaml"
# cairn agrees that the example is valid (its ${VAR} references set).
SHOP_PG_PASSWORD=x MONGO_URI=x MONGO_PASSWORD=x CHAT_TOKEN=x \
  expect_exit 0 cairn --config "$T/example.yaml" policy validate
# A typo fails both.
sed 's/^    retention:/    retenton:/' "$T/example.yaml" >"$T/typo.yaml"
cmp -s "$T/example.yaml" "$T/typo.yaml" && fail "the typo was not introduced"
expect_exit 1 "$PY" "$T/schema_check.py" "$schema" "$T/typo.yaml"
assert_contains "$OUT" "'retenton' was unexpected"
SHOP_PG_PASSWORD=x MONGO_URI=x MONGO_PASSWORD=x CHAT_TOKEN=x \
  expect_exit 2 cairn --config "$T/typo.yaml" policy validate
assert_contains "$ERR" "unknown key \"retenton\" (did you mean \"retention\"?)"
# So does a wrong type and an unknown engine.
sed 's/^      type: files/      type: file/' "$T/example.yaml" >"$T/engine.yaml"
expect_exit 1 "$PY" "$T/schema_check.py" "$schema" "$T/engine.yaml"
sed 's/^    retries: .*/    retries: many/' "$T/example.yaml" >"$T/retries.yaml"
cmp -s "$T/example.yaml" "$T/retries.yaml" && fail "the example sets no retries in a service"
expect_exit 1 "$PY" "$T/schema_check.py" "$schema" "$T/retries.yaml"
