# Restore runbooks: the restore commands printed in a generated runbook run
# exactly as printed (only CAIRN_RESTORE_TARGET / CAIRN_RESTORE_SNAPSHOT,
# which the runbook names, are set) and bring back the source data, for a
# files and an exec service; --all writes one file per service plus an
# index; the HTML is well-formed; an unknown service is exit 2 with a
# suggestion; an unopenable repository still gives a runbook (exit 3); a
# critical service without a passing drill is flagged.
# Usage: bash tests/e2e/test_runbook.sh /path/to/cairn
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

# The runbook prints `cairn ...`: put this binary first in PATH under that name.
mkdir -p "$T/bin"
ln -s "$CAIRN_BIN" "$T/bin/cairn"
export PATH="$T/bin:$PATH"

REPO=$T/repo
new_repo "$REPO"
printf '%s\n' "$CAIRN_PASSWORD" >"$T/repo.pass"
mkdir -p "$T/src/www/img" "$T/src/app/conf" "$T/state"
echo "<h1>home</h1>" >"$T/src/www/index.html"
random_file "$T/src/www/img/logo.png" 300000
ln -s index.html "$T/src/www/start.html"
echo "v1" >"$T/src/app/conf/version"
random_file "$T/src/app/data.bin" 200000

CFG=$T/cairn.yaml
cat >"$CFG" <<YAML
# a comment that must survive
repository:
  location: $REPO
  password_file: $T/repo.pass
services:
  web:
    owner: team-web
    tier: critical
    objectives: { rpo: 1h, rto: 1h }
    engine: { type: files, paths: [$T/src/www] }
    schedule: "0 * * * *"
    drill:
      schedule: "0 3 * * 0"
      checks: ["exec: grep -q home .$T/src/www/index.html"]
  app:
    owner: team-app
    tier: high
    objectives: { rpo: 1h, rto: 4h }
    engine: { type: exec, command: [tar, -C, $T/src/app, -cf, -, .], filename: app.tar }
    schedule: "0 * * * *"
    drill: { checks: ["exec: tar -tf app.tar | grep -q conf/version"] }
  shop:
    owner: team-shop
    tier: critical
    objectives: { rpo: 15m, rto: 1h }
    engine: { type: postgres, mode: physical, dsn: "host=/run/postgresql user=postgres", wal_archiving: true }
    schedule: "0 */6 * * *"
    drill: { schedule: "0 3 * * 0", checks: ["SELECT count(*) > 0 FROM orders"] }
daemon:
  state: $T/state/state.db
YAML
C() { cairn --config "$CFG" "$@"; }
# The commands of one kind from a Markdown runbook, exactly as printed.
extract() {  # extract FILE KIND > script
  python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r'^```sh ' + re.escape(sys.argv[2]) + r'\n(.*?)^```$', text, re.S | re.M)
if len(blocks) != 1:
    sys.exit(f"expected one ```sh {sys.argv[2]} block, found {len(blocks)}")
sys.stdout.write(blocks[0])
PY
}
# Runs a block in a fresh shell with only the named variables set.
run_block() {  # run_block FILE KIND [VAR=value...]
  local file=$1 kind=$2
  shift 2
  extract "$file" "$kind" >"$T/$kind.sh" || fail "no $kind block in $file"
  env "$@" sh -e "$T/$kind.sh" >"$T/$kind.out" 2>&1 || fail "$kind block of $file failed:
$(cat "$T/$kind.sh")
--- output:
$(cat "$T/$kind.out")"
}

expect_exit 0 C policy validate
expect_exit 0 C backup --service web
expect_exit 0 C backup --service app
cp -a "$T/src/app" "$T/app-v1"
OLD_APP=$(cairn --repo "$REPO" --json snapshots --service app | jq -r '.[0].id')
echo "v2" >"$T/src/app/conf/version"
expect_exit 0 C backup --service app
expect_exit 0 C drill run --service web
expect_exit 0 C drill run --service app

step "a files runbook: restore-latest and verify run as printed"
expect_exit 0 C runbook --service web --out "$T/web.md"
MD=$(cat "$T/web.md")
assert_contains "$MD" "# Restore runbook: web"
assert_contains "$MD" "password file $T/repo.pass"
assert_not_contains "$MD" "$CAIRN_PASSWORD" "runbook"
assert_contains "$MD" "every hour at minute 0"
assert_contains "$MD" "Last drill **passed**"
assert_contains "$MD" "cairn --config $CFG restore latest --service web"
assert_not_contains "$MD" "WARNING"
run_block "$T/web.md" restore-latest CAIRN_RESTORE_TARGET="$T/restore-web" PATH="$PATH"
assert_same_tree "$T/src/www" "$T/restore-web$T/src/www"
run_block "$T/web.md" verify CAIRN_RESTORE_TARGET="$T/restore-web" PATH="$PATH"
assert_contains "$(cat "$T/verify.out")" "check passed: grep -q home"

step "an exec runbook: fetch, load, and an older restore point"
expect_exit 0 C runbook --service app --out "$T/app.md"
run_block "$T/app.md" restore-latest CAIRN_RESTORE_TARGET="$T/restore-app" PATH="$PATH"
tar -C "$T/src/app" -cf "$T/app-now.tar" .
assert_file_same "$T/app-now.tar" "$T/restore-app/app.tar"
run_block "$T/app.md" restore-load CAIRN_RESTORE_TARGET="$T/restore-app" PATH="$PATH"
assert_same_content "$T/src/app" "$T/restore-app/files"
run_block "$T/app.md" verify CAIRN_RESTORE_TARGET="$T/restore-app" PATH="$PATH"
run_block "$T/app.md" restore-snapshot CAIRN_RESTORE_TARGET="$T/restore-old" CAIRN_RESTORE_SNAPSHOT="${OLD_APP:0:8}" \
  PATH="$PATH"
run_block "$T/app.md" restore-load CAIRN_RESTORE_TARGET="$T/restore-old" PATH="$PATH"
assert_same_content "$T/app-v1" "$T/restore-old/files"
assert_eq "v1" "$(cat "$T/restore-old/files/conf/version")" "older restore point"

step "the default target is the one the runbook names"
expect_exit 0 C runbook --service web --target-root "$T/default-root"
printf '%s' "$OUT" >"$T/web-root.md"
extract "$T/web-root.md" restore-latest >"$T/default.sh"
(unset CAIRN_RESTORE_TARGET; sh -e "$T/default.sh" >/dev/null 2>&1) || fail "default-target restore failed"
assert_same_tree "$T/src/www" "$T/default-root/web$T/src/www"

step "JSON data model"
expect_exit 0 C --json runbook --service app
jq -e '.service == "app" and .restore_points_total == 2 and (.commands | map(.kind)) ==
  ["restore-latest","restore-snapshot","restore-load","verify","drill","fleet-restore"] and .drill.last.passed and
  .repository.opened and .target_env == "CAIRN_RESTORE_TARGET"' <<<"$OUT" >/dev/null || fail "json: $OUT"

step "critical service without a passing drill, no snapshot: flagged, exit 3"
expect_exit 3 C runbook --service shop
assert_contains "$OUT" "CRITICAL SERVICE WITHOUT A PASSING RESTORE DRILL"
assert_contains "$OUT" "no snapshot"
assert_contains "$OUT" '```sh restore-pitr'
assert_contains "$OUT" "pg restore --service shop --target-dir"
assert_contains "$ERR" "warning: service shop: CRITICAL SERVICE WITHOUT A PASSING RESTORE DRILL"

step "--all: one file per service plus an index (Markdown and HTML)"
expect_exit 3 C runbook --all --out "$T/site"
assert_eq "app.md index.md shop.md web.md" "$(cd "$T/site" && ls | tr '\n' ' ' | sed 's/ $//')" "files"
assert_contains "$(cat "$T/site/index.md")" "[web](web.md)"
cmp -s <(extract "$T/site/web.md" restore-latest) <(extract "$T/web.md" restore-latest) ||
  fail "--all and --service give different commands"
expect_exit 3 C runbook --all --format html --out "$T/html"
assert_eq "app.html index.html shop.html web.html" "$(cd "$T/html" && ls | tr '\n' ' ' | sed 's/ $//')" "html files"
python3 - "$T/html"/*.html <<'PY' || fail "HTML is not well-formed"
import sys
from html.parser import HTMLParser
VOID = {"meta", "br", "hr", "img", "link", "input"}
class Check(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.stack, self.kinds, self.errors = [], [], []
    def handle_starttag(self, tag, attrs):
        if tag not in VOID: self.stack.append(tag)
        for k, v in attrs:
            if k == "data-kind": self.kinds.append(v)
        if tag in ("script", "link") or any(k in ("src",) for k, _ in attrs):
            self.errors.append(f"external resource <{tag}>")
    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag: self.errors.append(f"unbalanced </{tag}>")
for path in sys.argv[1:]:
    text = open(path).read()
    c = Check(); c.feed(text); c.close()
    if c.stack: c.errors.append(f"unclosed {c.stack}")
    if not text.startswith("<!DOCTYPE html>"): c.errors.append("no doctype")
    if not path.endswith("index.html") and "restore-latest" not in c.kinds: c.errors.append("no restore-latest block")
    if c.errors: sys.exit(f"{path}: {c.errors}")
PY
assert_contains "$(cat "$T/html/index.html")" '<a href="web.html">web</a>'
if command -v xmllint >/dev/null; then xmllint --html --noout "$T/html/web.html" || fail "xmllint"; fi

step "unknown service: exit 2 with a suggestion; bad usage"
expect_exit 2 C runbook --service wbe
assert_contains "$ERR" 'no service "wbe"'
assert_contains "$ERR" 'did you mean "web"?'
expect_exit 2 C runbook
expect_exit 2 C runbook --all
expect_exit 2 C runbook --service web --format pdf

step "a repository that cannot be opened still gives a runbook (exit 3)"
sed "s#password_file: $T/repo.pass#password_file: $T/missing.pass#" "$CFG" >"$T/nokey.yaml"
expect_exit 3 cairn --config "$T/nokey.yaml" runbook --service web
assert_contains "$OUT" "could not be opened"
assert_contains "$OUT" '```sh restore-latest'
assert_contains "$ERR" "warning: service web: The repository could not be opened"
printf 'wrong\n' >"$T/wrong.pass"
sed "s#password_file: $T/repo.pass#password_file: $T/wrong.pass#" "$CFG" >"$T/wrong.yaml"
expect_exit 3 cairn --config "$T/wrong.yaml" runbook --service app
assert_contains "$OUT" "could not be opened"
sed "/password_file:/d; s#location: $REPO#location: $T/nothing-here#" "$CFG" >"$T/norepo.yaml"
(unset CAIRN_PASSWORD; expect_exit 3 cairn --config "$T/norepo.yaml" runbook --service web &&
  assert_contains "$OUT" "no credential")
expect_exit 3 cairn --config "$T/norepo.yaml" runbook --service web
assert_contains "$OUT" "no repository at $T/nothing-here"
