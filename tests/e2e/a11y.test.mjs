// Every page gatehouse makes, checked by axe-core in Chromium, in the light
// and the dark colour scheme: no violation of impact serious or critical.
// The pages: sign-in (and its error), who am I (signed in and not), the
// sign-out question, signed out, the routes portal, the 403, 404 and 502
// pages, and every console page (with and without errors).
//
// axe is injected as a script, which the pages' Content-Security-Policy
// forbids (they run no script): this context alone bypasses the CSP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { artifacts, CHROMIUM, CHROMIUM_ARGS } from './helpers.mjs';
import { PASSWORD, signIn, startSite } from './site.mjs';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const FAILING = new Set(['serious', 'critical']);

let site;
let browser;
const results = []; // { page, scheme, violations: [{ id, impact, help, nodes }] }

before(async () => {
  site = await startSite();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  writeFileSync(join(artifacts, 'a11y.json'), JSON.stringify(results, null, 2));
  await browser?.close();
  site?.stop();
});

async function newPage() {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, bypassCSP: true });
  return context.newPage();
}

/** Runs axe on what `page` shows, in both colour schemes. */
async function check(page, name) {
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.addScriptTag({ content: AXE });
    const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    results.push({
      page: name,
      url: page.url(),
      scheme,
      violations: violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`),
      })),
    });
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

/** The serious and critical violations found since result `from`, readably. */
function failures(from) {
  return results.slice(from).flatMap((r) => r.violations.filter((v) => FAILING.has(v.impact)).map((v) =>
    `${r.page} (${r.scheme}): ${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.join('\n    ')}`));
}

test("gatehouse's own pages have no serious accessibility violation", async () => {
  const from = results.length;
  const page = await newPage();
  await page.goto(site.url('wiki'));
  assert.match(page.url(), /\/\.pomerium\/sign_in/);
  await check(page, 'sign-in');
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wrong');
  await page.click('button[type=submit]');
  await page.locator('.error').waitFor();
  await check(page, 'sign-in, wrong password');
  await page.goto(site.url('wiki', '/.pomerium/'));
  await check(page, 'who am I, not signed in');
  let resp = await page.goto(site.url('nothing'));
  assert.equal(resp.status(), 404);
  await check(page, '404 (no route)');

  await signIn(page, site.url('wiki'));
  await page.goto(site.url('wiki', '/.pomerium/'));
  await page.locator('dl').waitFor();
  await check(page, 'who am I');
  await page.goto(site.url('wiki', '/.pomerium/routes'));
  await check(page, 'routes portal');
  resp = await page.goto(site.url('wiki', '/.pomerium/sign_out'));
  assert.equal(resp.status(), 200);
  await check(page, 'sign out?');

  await signIn(page, site.url('payroll'));
  resp = await page.reload();
  assert.equal(resp.status(), 403);
  await check(page, '403 (not allowed)');
  await signIn(page, site.url('reports'));
  resp = await page.reload();
  assert.equal(resp.status(), 502);
  await check(page, '502 (upstream down)');

  await page.goto(site.url('wiki', '/.pomerium/'));
  await Promise.all([page.waitForURL(/signed_out/), page.click('button[type=submit]')]);
  await check(page, 'signed out');
  await page.context().close();
  const found = failures(from);
  assert.equal(found.length, 0, `\n${found.join('\n')}`);
});

test('every console page has no serious accessibility violation', async () => {
  const from = results.length;
  const page = await newPage();
  const url = (path) => site.url('console', path);
  await signIn(page, url('/'));
  await check(page, 'console: routes');
  await page.goto(url('/routes/new'));
  await check(page, 'console: new route');
  await page.getByLabel('From').fill('https://broken.localhost');
  await page.getByLabel('To', { exact: true }).fill('not a url');
  await page.getByRole('button', { name: 'Save and apply' }).click();
  await page.locator('#error-summary').waitFor();
  await check(page, 'console: new route, with errors');
  await page.goto(url('/routes/new'));
  await page.getByLabel('Name', { exact: true }).fill('Team app');
  await page.getByLabel('From').fill('https://team.localhost');
  await page.getByLabel('To', { exact: true }).fill('http://10.0.0.7:3000');
  await page.getByRole('button', { name: 'Save and apply' }).click();
  await page.waitForURL(/applied=1/);
  await check(page, 'console: routes, after a save');
  await page.getByRole('link', { name: 'Team app' }).click();
  await check(page, 'console: edit route');
  for (const tab of ['Headers', 'Timeouts & websockets', 'Upstream TLS', 'Embedding']) {
    await page.getByText(tab, { exact: true }).click();
    await check(page, `console: edit route, ${tab} tab`);
  }
  await page.goto(url('/history'));
  await check(page, 'console: history');
  await page.goto(url('/history/1'));
  await check(page, 'console: one change');
  await page.goto(url('/settings'));
  await check(page, 'console: settings');
  await page.getByLabel('Session lifetime (cookie_expire)').fill('forever');
  await page.getByRole('button', { name: 'Save and apply' }).click();
  await page.locator('#error-summary').waitFor();
  await check(page, 'console: settings, with errors');
  await page.goto(url('/import'));
  await check(page, 'console: import');
  await page.locator('#f-config').fill('routes: [');
  await page.getByRole('button', { name: 'Import and apply' }).click();
  await page.locator('#error-summary').waitFor();
  await check(page, 'console: import, with errors');
  const resp = await page.goto(url('/no/such/page'));
  assert.equal(resp.status(), 404);
  await check(page, 'console: not found');
  await page.context().close();

  // Someone outside the admins group.
  const bob = await newPage();
  await bob.goto(url('/'));
  await bob.fill('#username', 'bob');
  await bob.fill('#password', PASSWORD);
  const refused = bob.waitForResponse((r) => r.url().startsWith(url('/')) && r.status() === 403);
  await bob.click('button[type=submit]');
  await refused;
  await check(bob, 'console: 403 for a non-admin');
  await bob.context().close();

  const found = failures(from);
  assert.equal(found.length, 0, `\n${found.join('\n')}`);
});
