// The console in real headless Chromium, as Pomerium's guide goes: an
// admin signs in through the real OpenID provider, creates a route (From,
// To, "Any authenticated user", Headers tab → "Pass identity headers"),
// saves, and the new host serves at once with a valid assertion — no
// restart. Also: a field error for a bad To that changes nothing, revert
// from the history, a non-admin's 403, every page under 100 KB, and a page
// on another origin (same site, so the cookie rides along) refused when it
// posts a form or a `fetch` to the console.
// Screenshots go to artifacts/ (the docs' pictures are layout.test.mjs's, in
// docs/images/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { artifacts, binary, CHROMIUM, CHROMIUM_ARGS, freePort, here, start, tempDir } from './helpers.mjs';

let idp;
let gh;
let browser;
let port;
let upstream;
let upstreamUrl;
let output;

before(async () => {
  port = await freePort();
  idp = await start('node', [join(here, 'idp.mjs'), '--port', '0', '--login-form',
    '--redirect-uris', `https://authenticate.localhost:${port}/oauth2/callback`], /ready (\S+)/);
  const issuer = /ready (\S+)/.exec(idp.output())[1];
  // The app: answers with the headers it received, as JSON.
  upstream = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ app: 'team-app', headers: req.headers }));
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;
  const dir = tempDir('gatehouse-console-');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `address: 127.0.0.1:${port}
authenticate_service_url: https://authenticate.localhost:${port}
idp_provider: oidc
idp_provider_url: ${issuer}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
idp_scopes: openid profile email groups
console:
  from: https://console.localhost
  policy:
    allow:
      and:
        - groups: {has: admins}
routes:
  - name: Wiki
    from: https://wiki.localhost
    to: ${upstreamUrl}
    allow_any_authenticated_user: true
`);
  gh = await start(binary, ['run', '-c', config, '--log-format', 'json'], /gatehouse is listening/);
  output = gh.output;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  gh?.child.kill();
  idp?.child.kill();
  upstream?.close();
});

const url = (host, path = '/') => `https://${host}.localhost:${port}${path}`;

/** A page that writes to the console cross-origin: a form post and a
 * no-preflight `fetch` (text/plain) with the cookie, then says it is done. */
function attackPage() {
  const route = JSON.stringify({ from: 'https://evil.localhost', to: [upstreamUrl], allow_public_unauthenticated_access: true });
  return `<!doctype html><iframe name=sink></iframe>
<form id=f method=post target=sink action="${url('console', '/routes/new')}">
<input name=name value=Evil><input name=from value="https://evil.localhost"><input name=path_kind value=any>
<input name=to value="${upstreamUrl}"><input name=policy_preset value=public></form>
<script>
document.getElementById('f').submit();
fetch(${JSON.stringify(url('console', '/api/v1/routes'))}, { method: 'POST', mode: 'no-cors', credentials: 'include',
  headers: { 'content-type': 'text/plain' }, body: ${JSON.stringify(route)} })
  .finally(() => { document.title = 'sent'; });
</script>`;
}

/** A browser signed in to the console as `account` through the IdP's form. */
async function signIn(account) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(url('console'));
  await page.getByLabel('Account').fill(account);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => u.hostname === 'console.localhost');
  return { context, page };
}

async function size(page, path) {
  const resp = await page.goto(url('console', path));
  return { status: resp.status(), bytes: (await resp.body()).length };
}

/** The status a browser tab gets for `target` (Chromium resolves *.localhost). */
async function statusOf(context, target) {
  const tab = await context.newPage();
  const resp = await tab.goto(target);
  const status = resp.status();
  await tab.close();
  return status;
}

test('an admin creates a route in the browser and it serves at once, with a valid assertion', async () => {
  const { context, page } = await signIn('alice');
  const routes = await page.goto(url('console'));
  assert.equal(routes.status(), 200);
  await assert.doesNotReject(page.getByRole('heading', { name: 'Routes' }).waitFor());
  assert.match(await page.locator('tbody').textContent(), /Wiki.*file · read-only/s);
  await page.screenshot({ path: join(artifacts, 'console-routes.png'), fullPage: true });

  // The guide: New route → From/To → Any authenticated user → Headers tab →
  // Pass identity headers → Save.
  await page.getByRole('link', { name: 'New route' }).click();
  await page.getByLabel('Name', { exact: true }).fill('Team app');
  await page.getByLabel('From').fill('https://team.localhost');
  await page.getByLabel('To', { exact: true }).fill(upstreamUrl);
  await page.getByLabel('Any authenticated user').check();
  await page.getByText('Headers', { exact: true }).click();
  // Keyboard: the tabs are radio buttons; the checkbox is reached and
  // toggled with the keyboard alone.
  const pass = page.getByLabel('Pass identity headers');
  await pass.uncheck();
  await pass.focus();
  await page.keyboard.press('Space');
  assert.equal(await pass.isChecked(), true);
  await page.screenshot({ path: join(artifacts, 'console-route-headers.png'), fullPage: true });
  await page.getByRole('button', { name: 'Save and apply' }).click();
  await page.waitForURL(/\/\?applied=1$/);
  assert.match(await page.locator('.notice').textContent(), /Saved and applied \(version 1\)/);
  assert.match(await page.locator('tbody').textContent(), /Team app.*console/s);

  // The new host, without a restart: signed in already, the app gets a
  // verifiable assertion.
  const app = await context.newPage();
  const resp = await app.goto(url('team', '/hello'));
  assert.equal(resp.status(), 200, output());
  const seen = JSON.parse(await app.locator('body').textContent());
  assert.equal(seen.app, 'team-app');
  const jwt = seen.headers['x-pomerium-jwt-assertion'];
  assert.ok(jwt, 'assertion passed upstream');
  const jwks = JSON.parse(await (await app.goto(url('team', '/.well-known/pomerium/jwks.json'))).text());
  const { payload } = await jwtVerify(jwt, createLocalJWKSet(jwks), {
    issuer: 'team.localhost', audience: 'team.localhost', algorithms: ['ES256'],
  });
  assert.equal(payload.email, 'alice@example.com');
  assert.deepEqual(payload.groups, ['staff', 'admins']);
  assert.match(output(), /gatehouse is listening/);
  assert.equal((output().match(/gatehouse is listening/g) ?? []).length, 1, 'no restart');

  // Edit shows the route as saved.
  await page.getByRole('link', { name: 'Team app' }).click();
  assert.equal(await page.getByLabel('From').inputValue(), 'https://team.localhost');
  assert.equal(await page.getByLabel('Any authenticated user').isChecked(), true);

  // Settings page.
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.screenshot({ path: join(artifacts, 'console-settings.png'), fullPage: true });

  // No page over 100 KB.
  for (const path of ['/', '/routes/new', '/settings', '/history', '/history/1', '/import', '/api/v1/openapi.json']) {
    const { status, bytes } = await size(page, path);
    assert.equal(status, 200, path);
    assert.ok(bytes < 100 * 1024, `${path} is ${bytes} bytes`);
  }
  await context.close();
});

test('an invalid To URL shows a field error and changes nothing', async () => {
  const { context, page } = await signIn('alice');
  await page.goto(url('console', '/history'));
  const before = await page.locator('tbody tr').count();
  await page.goto(url('console', '/routes/new'));
  await page.getByLabel('From').fill('https://broken.localhost');
  await page.getByLabel('To', { exact: true }).fill('not a url');
  const saved = page.waitForResponse((r) => r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Save and apply' }).click();
  assert.equal((await saved).status(), 422);
  const to = page.getByLabel('To', { exact: true });
  assert.equal(await to.getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator('#err-to').textContent(), /invalid to URL not a url: it needs a scheme/);
  assert.equal(await page.locator('#err-to code').first().textContent(), 'to', 'quoted parts are set as code');
  assert.equal(await page.getByLabel('From').inputValue(), 'https://broken.localhost', 'the form keeps what was typed');
  await page.screenshot({ path: join(artifacts, 'console-field-error.png'), fullPage: true });
  await page.goto(url('console', '/history'));
  assert.equal(await page.locator('tbody tr').count(), before, 'no change recorded');
  assert.equal(await statusOf(context, url('broken')), 404, 'and nothing applied');
  await context.close();
});

test('revert from the history restores the previous state', async () => {
  const { context, page } = await signIn('alice');
  await page.goto(url('console', '/history'));
  await page.getByRole('link', { name: '1', exact: true }).click();
  assert.match(await page.locator('.diff').textContent(), /\+ from: https:\/\/team\.localhost/);
  await page.screenshot({ path: join(artifacts, 'console-history-change.png'), fullPage: true });
  await page.getByRole('button', { name: 'Revert this change' }).click();
  await page.waitForURL(/\/\?applied=2$/);
  assert.doesNotMatch(await page.locator('tbody').textContent(), /Team app/);
  assert.equal(await statusOf(context, url('team')), 404, 'the route is gone at once');
  await page.goto(url('console', '/history'));
  assert.match(await page.locator('tbody tr').first().textContent(), /revert.*reverted change 1/s);
  await page.screenshot({ path: join(artifacts, 'console-history.png'), fullPage: true });
  await context.close();
});

test('a signed-in user outside the admins group gets 403', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(url('console'));
  await page.getByLabel('Account').fill('bob');
  const final = page.waitForResponse((r) => r.url().startsWith(url('console')) && r.status() === 403);
  await page.getByRole('button', { name: 'Sign in' }).click();
  assert.equal((await final).status(), 403);
  assert.doesNotMatch(await page.content(), /New route/);
  await page.screenshot({ path: join(artifacts, 'console-forbidden.png') });
  await context.close();
});

test('a page on another origin cannot write to the console with the admin\'s cookie', async () => {
  // The attacker's page on the console's host name but another port: the
  // same site, so the browser sends the Lax session cookie along; only the
  // console's Origin check stands in the way.
  const dir = tempDir('gatehouse-attacker-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
    '-subj', '/CN=console.localhost'], { stdio: 'ignore' });
  const attacker = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
    (req, res) => { res.setHeader('content-type', 'text/html'); res.end(attackPage()); });
  await new Promise((r) => attacker.listen(0, '127.0.0.1', r));
  try {
    const { context, page } = await signIn('alice');
    await page.goto(url('console', '/history'));
    const before = await page.locator('tbody tr').count();
    const refusedBefore = output().split('\n').filter((l) => l.includes('write from another origin')).length;
    const posts = [];
    context.on('request', (r) => {
      if (r.method() === 'POST' && r.url().startsWith(url('console', '/'))) {
        posts.push(r);
      }
    });
    const tab = await context.newPage();
    await tab.goto(`https://console.localhost:${attacker.address().port}/`);
    await tab.waitForFunction(() => document.title === 'sent');
    assert.equal(posts.length, 2);
    const seen = [];
    for (const r of posts) {
      const resp = await r.response();
      const headers = await r.allHeaders();
      seen.push({ url: r.url(), status: resp.status(), cookie: /_pomerium=/.test(headers.cookie ?? '') });
    }
    assert.deepEqual(seen.map((s) => s.status), [403, 403], JSON.stringify(seen));
    assert.ok(seen.some((s) => s.cookie), `the cookie rode along: ${JSON.stringify(seen)}`);
    // Both are the console's refusal (without a session they would be a
    // sign-in answer, 302 or 401), logged with the page's origin.
    const logged = output().split('\n').filter((l) => l.includes('write from another origin'));
    assert.equal(logged.length - refusedBefore, 2, logged.join('\n'));
    assert.match(logged.at(-1), new RegExp(`Origin: https://console.localhost:${attacker.address().port}`));
    await page.goto(url('console', '/history'));
    assert.equal(await page.locator('tbody tr').count(), before, 'no change recorded');
    assert.equal(await statusOf(context, url('evil')), 404, 'and nothing applied');
    await context.close();
  } finally {
    attacker.close();
  }
});
