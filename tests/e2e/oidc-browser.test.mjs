// The OpenID Connect main flow in real headless Chromium: gatehouse (the
// real binary) in front of an app, the certified oidc-provider as the IdP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
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

/** Spawns a process and waits until its output matches `ready`. */
async function start(cmd, args, ready) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const deadline = Date.now() + 20000;
  while (!ready.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill();
      throw new Error(`${cmd} did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => out };
}

let idp;
let gh;
let browser;
let port;

before(async () => {
  port = await freePort();
  idp = await start('node', [join(here, 'idp.mjs'), '--port', '0',
    '--redirect-uris', `https://app.localhost:${port}/oauth2/callback`], /ready (\S+)/);
  const issuer = /ready (\S+)/.exec(idp.output())[1];
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-oidc-browser-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `address: 127.0.0.1:${port}
idp_provider: oidc
idp_provider_url: ${issuer}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
idp_scopes: openid profile email groups offline_access
routes:
  - from: https://app.localhost
    redirect: {path_redirect: /.pomerium/, response_code: 302}
    allow_any_authenticated_user: true
`);
  gh = await start(binary, ['run', '-c', config, '--log-format', 'json'], /gatehouse is listening/);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  gh?.child.kill();
  idp?.child.kill();
});

test('a browser signs in through the OpenID provider and sees its identity', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const seen = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) seen.push(r.url()); });
  await page.goto(`https://app.localhost:${port}/`);
  await page.waitForURL(`https://app.localhost:${port}/.pomerium/`);
  assert.ok(seen.some((u) => u.includes('/auth?') && u.includes('code_challenge_method=S256')), 'went through the provider');
  assert.ok(seen.some((u) => u.includes('/oauth2/callback?code=')), 'came back with a code');
  const text = await page.locator('main').textContent();
  assert.match(text, /Alice Liddell/);
  assert.match(text, /alice@example\.com/);
  assert.match(text, /staff, admins/);
  await page.screenshot({ path: join(artifacts, 'oidc-signed-in.png') });
  await context.close();
});
