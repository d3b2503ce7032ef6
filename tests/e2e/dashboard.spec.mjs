// The dashboard in a real browser (Debian's chromium, headless, driven by
// playwright-core), against the `cairn server` that test_dashboard.sh
// started and seeded. Plain node, no test runner: the first failed check
// throws and the process exits 1 naming it.
//
// Environment (set by test_dashboard.sh):
//   PLAYWRIGHT_CORE  folder of the playwright-core package
//   CHROMIUM         the browser binary
//   BASE_URL         http://127.0.0.1:PORT/
//   VIEWER_TOKEN, RESTORER_TOKEN, OPERATOR_TOKEN, ADMIN_TOKEN
//   OLD_SNAPSHOT     id of shop's first snapshot (the one to restore)
//   RESTORE_TARGET   folder name the restore goes to
//   ARTIFACTS        where the screenshots go
import { createRequire } from 'node:module';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const { chromium } = createRequire(import.meta.url)(env('PLAYWRIGHT_CORE'));
const BASE = env('BASE_URL');
const ART = env('ARTIFACTS');

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  // Root in a container has no user namespaces for chromium's sandbox.
  args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
});
const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
context.setDefaultTimeout(30_000);
const page = await context.newPage();
// Any script error or CSP violation fails the test; a 401 the login
// provokes on purpose shows up as a failed resource load, which is fine.
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
});
const shot = async (name) => {
  await page.screenshot({ path: `${ART}/${name}.png`, fullPage: true });
  console.log(`   screenshot ${ART}/${name}.png`);
};

async function login(token) {
  await page.goto(BASE);
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
}

async function logout() {
  await page.click('#logout');
  await page.waitForSelector('#login-form');
}

// Text of the fleet row of `service`, cell by class.
async function cell(service, cls) {
  return (await page.locator(`#fleet tr[data-service="${service}"] td.${cls}`).innerText()).trim();
}

// Buttons and links that would start a restore, anywhere on the page
// ("Restore…", "Restore this", the menu's "Restore"; not "Run a restore drill").
async function restoreControls() {
  const buttons = await page.getByRole('button', { name: /^\W*restore/i }).count();
  const links = await page.getByRole('link', { name: /^\W*restore/i }).count();
  return buttons + links;
}

try {
  // --- a wrong token is refused, with a message
  await login('cairn_0000000000000000_not-a-real-token');
  await page.waitForSelector('#login-error:not([hidden])');
  const err = await page.locator('#login-error').innerText();
  check(/not accepted/i.test(err), `a bad token shows an error ("${err}")`);
  check((await page.locator('#fleet').count()) === 0, 'no fleet view after a bad token');
  await shot('01-login-bad-token');

  // --- viewer: sees the fleet with the right compliance, no restore anywhere
  await login(env('VIEWER_TOKEN'));
  await page.waitForSelector('#fleet tbody tr');
  check((await page.locator('#who-role').textContent()).trim() === 'viewer', 'the header shows the viewer role');
  const services = await page.locator('#fleet tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.service));
  check(JSON.stringify(services) === JSON.stringify(['shop', 'blog', 'ledger']), `one row per service (${services})`);
  check((await cell('shop', 'rpo')).includes('Compliant') && !(await cell('shop', 'rpo')).includes('Not compliant'), 'shop: RPO compliant');
  check((await cell('shop', 'rto')).includes('Compliant'), 'shop: RTO compliant after its drill');
  check((await cell('shop', 'status-cell')).includes('Healthy'), 'shop: healthy');
  check((await cell('blog', 'rpo')).includes('Compliant') && !(await cell('blog', 'rpo')).includes('Not compliant'), 'blog: RPO compliant');
  check((await cell('blog', 'rto')).includes('No drill yet'), 'blog: no drill yet');
  check((await cell('blog', 'status-cell')).includes('Needs attention'), 'blog: needs attention (amber)');
  check((await cell('ledger', 'rpo')).includes('Not compliant'), 'ledger (never backed up): RPO not compliant');
  check((await cell('ledger', 'last-backup')).includes('never'), 'ledger: last backup never');
  check((await cell('ledger', 'status-cell')).includes('At risk'), 'ledger: at risk (red)');
  check(await page.locator('#fleet tr[data-service="ledger"]').evaluate((r) => r.classList.contains('row-bad')), 'ledger row is red');
  check(await page.locator('#fleet tr[data-service="shop"]').evaluate((r) => r.classList.contains('row-ok')), 'shop row is green');
  check((await restoreControls()) === 0, 'viewer: no restore button or link in the fleet view');
  await shot('02-viewer-fleet');

  await page.click('#fleet a.service-link >> text=shop');
  await page.waitForSelector('#snapshots-h');
  await page.waitForSelector('svg.timeline circle');
  check((await page.locator('svg.timeline circle').count()) === 2, 'shop: two snapshots on the timeline');
  check((await page.locator('svg.line-chart').count()) === 2, 'shop: size and duration charts');
  check((await restoreControls()) === 0, 'viewer: no restore button or link in the service view');
  check((await page.locator('#backup-now').count()) === 0, 'viewer: no backup button');
  await page.getByRole('button', { name: 'View report' }).first().click();
  await page.waitForSelector('.report-box .rendered');
  check(/PASSED/.test(await page.locator('.report-box').innerText()), 'the drill report is shown');
  await page.click('#runbook summary');
  await page.waitForSelector('.runbook .rendered');
  check(/runbook/i.test(await page.locator('.runbook').innerText()), 'the runbook is shown');
  await shot('03-viewer-service');

  await page.goto(`${BASE}#/restore/shop`);
  await page.waitForSelector('h1:text("Not available")');
  check((await page.locator('#restore-form').count()) === 0, 'viewer: the restore wizard is refused');
  await logout();
  check((await page.evaluate(() => sessionStorage.getItem('cairn.token'))) === null, 'logout forgets the token');

  // --- restorer (scoped to shop and blog): restore shop's first snapshot
  await login(env('RESTORER_TOKEN'));
  await page.waitForSelector('#fleet tbody tr');
  const scoped = await page.locator('#fleet tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.service));
  check(JSON.stringify(scoped) === JSON.stringify(['shop', 'blog']), `restorer sees only its services (${scoped})`);
  check((await restoreControls()) > 0, 'restorer: restore controls are shown');
  await shot('04-restorer-fleet');

  await page.click('#fleet a.service-link >> text=shop');
  await page.waitForSelector('#snapshots-h');
  check((await page.locator('#backup-now').count()) === 1, 'restorer: the backup button is shown (restorer includes operator)');
  await page.getByRole('button', { name: 'Browse' }).first().click();
  await page.waitForSelector('.browser table.files tbody tr');
  check((await page.locator('.browser table.files tbody tr').count()) > 0, 'restorer: a snapshot can be browsed');
  await page.click('#restore-service');
  await page.waitForSelector('#restore-form');
  await page.waitForSelector(`#restore-snapshot option[value="${env('OLD_SNAPSHOT')}"]`, { state: 'attached' });
  check((await page.locator('#restore-service-select').inputValue()) === 'shop', 'the wizard starts with the service');
  await page.check('#point-snapshot');
  await page.selectOption('#restore-snapshot', env('OLD_SNAPSHOT'));
  await page.fill('#restore-target', 'bad/name');
  check(await page.locator('#restore-start').isDisabled(), 'a target with a slash cannot be submitted');
  await page.fill('#restore-target', env('RESTORE_TARGET'));
  check(await page.locator('#restore-start').isEnabled(), 'a valid target can be submitted');
  check((await page.locator('#restore-summary').innerText()).includes(`${env('RESTORE_TARGET')}/shop`), 'the review names the target');
  await shot('05-restore-wizard');
  await page.click('#restore-start');
  await page.waitForSelector('.job-card[data-state="succeeded"], .job-card[data-state="failed"]', { timeout: 120_000 });
  const state = await page.locator('.job-card').getAttribute('data-state');
  const jobText = await page.locator('.job-card').innerText();
  await shot('06-restore-finished');
  check(state === 'succeeded', `the restore job succeeded (${jobText.replace(/\s+/g, ' ').slice(0, 300)})`);
  check(/Restore succeeded/.test(jobText), 'the page says the restore succeeded');

  // The same target again is refused by the server, and the page says why.
  await page.click('#nav-fleet');
  await page.waitForSelector('#fleet');
  await page.click('#nav-restore');
  await page.waitForSelector('#restore-form');
  await page.selectOption('#restore-service-select', 'shop');
  await page.waitForFunction(() => !document.querySelector('#restore-start').disabled);
  await page.fill('#restore-target', env('RESTORE_TARGET'));
  await page.click('#restore-start');
  await page.waitForSelector('#restore-error:not([hidden])');
  check(/already exists/.test(await page.locator('#restore-error').innerText()), 'an existing target is refused with a message');

  await logout();

  // --- operator: may back up and drill, may not restore
  await login(env('OPERATOR_TOKEN'));
  await page.waitForSelector('#fleet tbody tr');
  check((await restoreControls()) === 0, 'operator: no restore control in the fleet view');
  await page.click('#fleet a.service-link >> text=blog');
  await page.waitForSelector('#backup-now');
  check((await restoreControls()) === 0, 'operator: no restore control in the service view');
  await page.click('#backup-now');
  await page.waitForSelector('.job-card[data-state="succeeded"], .job-card[data-state="failed"]', { timeout: 120_000 });
  check((await page.locator('.job-card').getAttribute('data-state')) === 'succeeded', 'operator: "Back up now" runs a backup that succeeds');
  await shot('07-operator-backup');
  check((await page.locator('#nav-audit').count()) === 0, 'operator: no audit log in the menu');
  await logout();

  // --- admin: the audit log shows the restorer's restore
  await login(env('ADMIN_TOKEN'));
  await page.waitForSelector('#fleet tbody tr');
  await page.click('#nav-audit');
  await page.waitForSelector('table.audit tbody tr');
  const restores = await page.locator('table.audit tbody tr', { hasText: 'restore.start' }).filter({ hasText: 'rolf' }).count();
  check(restores === 2, `admin: the audit log lists rolf's two restore attempts (${restores})`);
  await shot('08-admin-audit');

  check(problems.length === 0, `no script errors or CSP violations${problems.length ? `: ${problems.join(' | ')}` : ''}`);
} catch (e) {
  try {
    await page.screenshot({ path: `${ART}/failure.png`, fullPage: true });
    console.log(`   screenshot ${ART}/failure.png`);
  } catch {
    // the browser is gone
  }
  if (problems.length) console.error(`page problems: ${problems.join(' | ')}`);
  console.error(e.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
