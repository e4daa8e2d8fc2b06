// Real-browser tests: headless Chromium (Debian package) driven by
// playwright-core against the real gatehouse binary on loopback.
// Run by scripts/test.sh after `cargo build`; screenshots go to artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binary = process.env.GATEHOUSE_BIN ?? join(root, 'target', 'debug', 'gatehouse');
const artifacts = join(root, 'artifacts');
mkdirSync(artifacts, { recursive: true });

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Starts `gatehouse quickstart` and reads the printed demo password. */
async function startQuickstart() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-browser-'));
  const child = spawn(binary, ['quickstart', '--port', String(port), '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const deadline = Date.now() + 20000;
  while (!/gatehouse is listening/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill();
      throw new Error(`gatehouse quickstart did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const password = /password\s+(\S+)/.exec(out)[1];
  return { child, port, password, log: () => out };
}

let gh;
let browser;

before(async () => {
  gh = await startQuickstart();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // launch() gives Chromium a new, empty profile directory of its own.
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  gh?.child.kill();
});

test('signing in with the built-in directory lands on the page asked for', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const url = `https://verify.localhost:${gh.port}/`;
  await page.goto(url);
  assert.match(page.url(), /\/\.pomerium\/sign_in\?pomerium_redirect_uri=/);
  assert.equal(await page.locator('h1').textContent(), 'Sign in');
  await page.screenshot({ path: join(artifacts, 'login-page.png') });

  // A wrong password: one generic message, still on the form.
  await page.fill('#username', 'demo');
  await page.fill('#password', 'not-the-password');
  await page.click('button[type=submit]');
  assert.equal((await page.locator('.error').textContent()).trim(), 'Wrong username or password.');
  assert.equal(await page.inputValue('#username'), 'demo', 'the username is kept');
  await page.screenshot({ path: join(artifacts, 'login-error.png') });

  await page.fill('#username', 'demo');
  await page.fill('#password', gh.password);
  await page.click('button[type=submit]');
  await page.waitForURL(`https://verify.localhost:${gh.port}/.pomerium/`);
  const text = await page.locator('main').textContent();
  assert.match(text, /Demo User/);
  assert.match(text, /demo@example\.com/);
  await page.screenshot({ path: join(artifacts, 'signed-in.png') });

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === '_pomerium');
  assert.ok(session, 'session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);

  // Sign out from the page: back to signed out, and the app asks again.
  await page.click('button[type=submit]');
  await page.waitForURL(/\/\.pomerium\/signed_out$/);
  await page.goto(url);
  assert.match(page.url(), /\/\.pomerium\/sign_in/);
  await context.close();
});

test('two tabs signing in at once both succeed', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const [a, b] = [await context.newPage(), await context.newPage()];
  await a.goto(`https://verify.localhost:${gh.port}/?tab=a`);
  await b.goto(`https://verify.localhost:${gh.port}/?tab=b`);
  for (const p of [a, b]) {
    await p.fill('#username', 'demo');
    await p.fill('#password', gh.password);
  }
  await a.click('button[type=submit]');
  await b.click('button[type=submit]');
  await a.waitForURL(/\/\.pomerium\/\?tab=a$/);
  await b.waitForURL(/\/\.pomerium\/\?tab=b$/);
  await context.close();
});
