// The OpenID Connect main flow in real headless Chromium: gatehouse (the
// real binary) in front of an app, the certified oidc-provider as the IdP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { artifacts, binary, CHROMIUM, CHROMIUM_ARGS, freePort, here, start, tempDir } from './helpers.mjs';

let idp;
let gh;
let browser;
let port;

before(async () => {
  port = await freePort();
  idp = await start('node', [join(here, 'idp.mjs'), '--port', '0',
    '--redirect-uris', `https://app.localhost:${port}/oauth2/callback`], /ready (\S+)/);
  const issuer = /ready (\S+)/.exec(idp.output())[1];
  const dir = tempDir('gatehouse-oidc-browser-');
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
    executablePath: CHROMIUM,
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
