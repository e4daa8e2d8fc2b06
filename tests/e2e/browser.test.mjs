// Real-browser tests: headless Chromium (Debian package) driven by
// playwright-core against the real gatehouse binary on loopback.
// Run by scripts/test.sh after `cargo build`; screenshots go to artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { artifacts, binary, CHROMIUM, CHROMIUM_ARGS, freePort, start, tempDir } from './helpers.mjs';

/** Starts `gatehouse quickstart` and reads the printed demo password. */
async function startQuickstart() {
  const port = await freePort();
  const dir = tempDir('gatehouse-browser-');
  // The banner (password, what to try) is printed once the proxy listens.
  const gh = await start(binary, ['quickstart', '--port', String(port), '--dir', dir], /What to try:/);
  const password = /password\s+(\S+)/.exec(gh.output())[1];
  return { child: gh.child, port, password };
}

let gh;
let browser;

before(async () => {
  gh = await startQuickstart();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
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
  // One sign-in for every host: the form is on the authenticate host.
  assert.match(page.url(), new RegExp(`^https://authenticate\\.localhost:${gh.port}/\\.pomerium/sign_in\\?`));
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
  // Back on the page asked for: the quickstart's verify app, which checked
  // the X-Pomerium-Jwt-Assertion gatehouse forwarded against its JWKS.
  await page.waitForURL(url);
  assert.equal(await page.locator('#verdict').textContent(), 'Identity verified');
  assert.equal(await page.locator('#who').textContent(), 'Demo User <demo@example.com>');
  assert.equal(await page.locator('#claim-groups').textContent(), 'demo, admins');
  assert.equal(await page.locator('#claim-issuer').textContent(), 'verify.localhost');
  await page.screenshot({ path: join(artifacts, 'signed-in.png'), fullPage: true });

  // gatehouse's own who-am-I page.
  await page.goto(`https://verify.localhost:${gh.port}/.pomerium/`);
  const text = await page.locator('main').textContent();
  assert.match(text, /Demo User/);
  assert.match(text, /demo@example\.com/);

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

test("one sign-in serves the quickstart's verify app and its console; sign-out ends both", async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const verify = `https://verify.localhost:${gh.port}/`;
  const console_ = `https://console.localhost:${gh.port}/`;
  await page.goto(verify);
  await page.fill('#username', 'demo');
  await page.fill('#password', gh.password);
  await page.click('button[type=submit]');
  await page.waitForURL(verify);
  assert.equal(await page.locator('#verdict').textContent(), 'Identity verified');

  // The console: no password asked again, the hand-off signs it in.
  await page.goto(console_);
  await page.waitForURL(console_);
  const rows = await page.locator('tbody').textContent();
  assert.match(rows, /verify\.localhost/);
  assert.match(rows, /hello\.localhost/);
  assert.match(await page.locator('footer').textContent(), /gatehouse-console\.redb/);

  // Signing out on one host signs out of every host.
  await page.goto(`https://verify.localhost:${gh.port}/.pomerium/sign_out`);
  if (await page.locator('button[type=submit]').count()) await page.click('button[type=submit]');
  await page.waitForURL(/\/\.pomerium\/signed_out$/);
  for (const url of [verify, console_]) {
    await page.goto(url);
    assert.match(page.url(), /\/\.pomerium\/sign_in\?/, url);
  }
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
  await a.waitForURL(/\/\?tab=a$/);
  await b.waitForURL(/\/\?tab=b$/);
  for (const p of [a, b]) assert.equal(await p.locator('#verdict').textContent(), 'Identity verified');
  await context.close();
});

test('the authenticate host hands a browser session to another domain', async () => {
  // A configuration with a separate authenticate host and the built-in directory.
  const port = await freePort();
  const dir = tempDir('gatehouse-handoff-');
  const hash = execFileSync(binary, ['hash-password'], { input: 'handoff-pass' }).toString().trim();
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `address: 127.0.0.1:${port}
authenticate_service_url: https://auth.localhost:${port}
idp_provider: local
local_users:
  - {username: carol, email: carol@example.com, name: Carol, password_hash: '${hash}'}
routes:
  - from: https://app.localhost
    redirect: {path_redirect: /.pomerium/, response_code: 302}
    allow_any_authenticated_user: true
`);
  const gh2 = await start(binary, ['run', '-c', config, '--log-format', 'json'], /gatehouse is listening/);
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`https://app.localhost:${port}/`);
    assert.match(page.url(), new RegExp(`^https://auth\\.localhost:${port}/\\.pomerium/sign_in`));
    await page.fill('#username', 'carol');
    await page.fill('#password', 'handoff-pass');
    await page.click('button[type=submit]');
    // Form post on auth.localhost, redirects through app.localhost's callback.
    await page.waitForURL(`https://app.localhost:${port}/.pomerium/`);
    assert.match(await page.locator('main').textContent(), /carol@example\.com/);
    await page.screenshot({ path: join(artifacts, 'handoff-signed-in.png') });
    await context.close();
  } finally {
    gh2.child.kill();
  }
});
