// The console on any screen: every console page at 375, 768 and 1280 px
// wide fits its window (no sideways scrolling, the header whole, nothing
// sticking out of a card, badges on one line), and the main ones look as
// their committed screenshots in docs/images/ do (see snapshots.mjs; run
// with GATEHOUSE_BLESS=1 to take new ones). Also: the policy chooser shows
// only the chosen preset's inputs, a form that was not saved puts the focus
// on its list of problems, and unnamed routes are not listed by From twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { artifacts, CHROMIUM, CHROMIUM_ARGS } from './helpers.mjs';
import { signIn, startSite } from './site.mjs';
import { matchesReference } from './snapshots.mjs';

export const WIDTHS = [375, 768, 1280];

let site;
let browser;
let context;
let page;

before(async () => {
  site = await startSite();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  context = await browser.newContext({ ignoreHTTPSErrors: true, colorScheme: 'light', viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  await signIn(page, site.url('console'));
  // One console route, so the list, the history and a change have content.
  await page.goto(site.url('console', '/routes/new'));
  await page.getByLabel('Name', { exact: true }).fill('Team app');
  await page.getByLabel('From').fill('https://team.localhost');
  await page.getByLabel('To', { exact: true }).fill('http://10.0.0.7:3000');
  await page.locator('#preset-groups').check();
  await page.locator('#f-policy_groups').fill('staff, admins');
  await page.getByRole('button', { name: 'Save and apply' }).click();
  await page.waitForURL(/\?applied=1$/);
});

after(async () => {
  await browser?.close();
  site?.stop();
});

/** What is wrong with the page's layout in its window (empty: nothing). */
function layoutProblems(p) {
  return p.evaluate(() => {
    const problems = [];
    const de = document.documentElement;
    const view = de.clientWidth;
    const what = (el) => `${el.tagName.toLowerCase()}${el.className ? '.' + el.className : ''} "${el.textContent.trim().slice(0, 30)}"`;
    if (de.scrollWidth > view) problems.push(`the page is ${de.scrollWidth} px wide in a ${view} px window`);
    const header = document.querySelector('header');
    for (const el of header ? [header, ...header.querySelectorAll('*')] : []) {
      const r = el.getBoundingClientRect();
      if (r.width && (r.left < 0 || r.right > view + 0.5)) problems.push(`header: ${what(el)} is cut off (${r.left}–${r.right})`);
    }
    for (const tag of document.querySelectorAll('.tag')) {
      const lines = tag.getClientRects().length;
      const high = tag.getBoundingClientRect().height > 1.5 * parseFloat(getComputedStyle(tag).lineHeight);
      if (lines > 1 || high) problems.push(`the badge ${what(tag)} wraps`);
    }
    for (const row of document.querySelectorAll('tr')) {
      const cells = [...row.children].map((c) => c.getBoundingClientRect()).filter((r) => r.width > 1);
      for (let i = 1; i < cells.length; i++) {
        const [a, b] = [cells[i - 1], cells[i]];
        const apart = a.right <= b.left + 0.5 || a.bottom <= b.top + 0.5;
        if (!apart) problems.push(`cells overlap in the row ${what(row)}`);
      }
    }
    for (const card of document.querySelectorAll('.card')) {
      const c = card.getBoundingClientRect();
      for (const el of card.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        // What is inside a visually hidden (1 px, clipped) box is not seen.
        let hidden = false;
        for (let a = el; a && a !== card; a = a.parentElement) hidden ||= a.getBoundingClientRect().width <= 1;
        if (r.width && !hidden && (r.right > c.right + 0.5 || r.left < c.left - 0.5)) {
          problems.push(`${what(el)} sticks out of its card (${Math.round(r.left)}–${Math.round(r.right)}, the card ${Math.round(c.left)}–${Math.round(c.right)})`);
          break;
        }
      }
    }
    return problems;
  });
}

// Times and the store's temporary path change from run to run.
const volatile = (p) => [p.locator('footer'), p.locator('td[data-label="When (UTC)"]'), p.locator('.card > p', { hasText: ' UTC · ' })];

/** The console pages, each as a step that opens it. */
const PAGES = [
  ['routes', '/', { reference: true }],
  ['route-new', '/routes/new', {}],
  ['route-error', null, { reference: true }],
  ['route-headers', null, { reference: [1280] }],
  ['route-edit', 'edit', {}],
  ['history', '/history', { reference: true }],
  ['history-change', '/history/1', { reference: [1280] }],
  ['settings', '/settings', { reference: [1280] }],
  ['import', '/import', {}],
];

async function open(name, path) {
  if (path === 'edit') {
    await page.goto(site.url('console'));
    await page.getByRole('link', { name: 'Team app' }).click();
  } else if (path) {
    await page.goto(site.url('console', path));
  } else if (name === 'route-error') {
    await page.goto(site.url('console', '/routes/new'));
    await page.getByLabel('From').fill('https://broken.localhost');
    await page.getByLabel('To', { exact: true }).fill('not a url');
    const saved = page.waitForResponse((r) => r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Save and apply' }).click();
    assert.equal((await saved).status(), 422);
    await page.waitForLoadState();
  } else if (name === 'route-headers') {
    await page.goto(site.url('console', '/routes/new'));
    await page.getByText('Headers', { exact: true }).click();
  }
}

for (const width of WIDTHS) {
  test(`every console page fits a ${width} px window`, async () => {
    await page.setViewportSize({ width, height: 800 });
    const failures = [];
    for (const [name, path, { reference }] of PAGES) {
      await open(name, path);
      for (const p of await layoutProblems(page)) failures.push(`${name}: ${p}`);
      const compare = reference === true || (Array.isArray(reference) && reference.includes(width));
      if (compare) {
        try {
          await matchesReference(page, `console-${name}-${width}`, { mask: volatile(page) });
        } catch (e) {
          failures.push(e.message);
        }
      } else {
        await page.screenshot({ path: join(artifacts, `console-${name}-${width}.png`), fullPage: true });
      }
    }
    assert.deepEqual(failures, []);
  });
}

test('the routes list labels its numbers and names unnamed routes', async () => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(site.url('console'));
  const heads = await page.locator('thead th').allTextContents();
  assert.deepEqual(heads.slice(-3), ['Requestslast minute', 'Allowedsince start', 'Deniedsince start']);
  const row = page.locator('tbody tr', { hasText: 'grafana.localhost' });
  const name = row.locator('td[data-label=Name]');
  assert.equal(await name.locator('.derived').textContent(), 'grafana-dashboards', 'the name the routes portal gives it, not its From again');
  assert.equal(await name.locator('.visually-hidden').textContent(), ' (no name set)');
  assert.match(await row.locator('td[data-label=From]').innerText(), /^https:\/\/grafana\.localhost prefix \/dashboards\/$/);
});

test('the policy chooser shows only the inputs of the chosen preset', async () => {
  await page.goto(site.url('console', '/routes/new'));
  const inputs = {
    domain: '#f-policy_domain', users: '#f-policy_users', groups: '#f-policy_groups', ppl: '#f-policy_ppl',
  };
  for (const preset of ['public', 'any', 'domain', 'users', 'groups', 'ppl']) {
    await page.locator(`#preset-${preset}`).check();
    for (const [owner, selector] of Object.entries(inputs)) {
      assert.equal(await page.locator(selector).isVisible(), owner === preset, `${selector} with the preset ${preset}`);
    }
  }
});

test('a form that was not saved puts the focus on its problems, each a link to its field', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  await open('route-error', null);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-summary');
  const link = page.locator('#error-summary a[href="#f-to"]');
  assert.match(await link.textContent(), /^To: invalid to URL/);
  await link.click();
  assert.equal(await page.evaluate(() => location.hash), '#f-to');
  assert.ok(await page.locator('#f-to').isVisible());
  // Import and settings answer the same way.
  await page.goto(site.url('console', '/import'));
  await page.locator('#f-config').fill('routes: [');
  await page.getByRole('button', { name: 'Import and apply' }).click();
  await page.waitForLoadState();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-summary');
  await page.goto(site.url('console', '/settings'));
  await page.getByLabel('Session lifetime (cookie_expire)').fill('forever');
  await page.getByRole('button', { name: 'Save and apply' }).click();
  await page.waitForLoadState();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-summary');
});
