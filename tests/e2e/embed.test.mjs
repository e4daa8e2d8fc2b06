// Embedding a protected route in an iframe of another site, in real
// headless Chromium: a parent app on https://parent.localhost already holds
// the user's JWT (issued by the real oidc-provider, Keycloak-style), hands
// it to gatehouse once with a form POST into the iframe, and the embedded
// "Grafana" on https://grafana.localhost loads signed in: SameSite=None;
// Secure; Partitioned cookie, CSP frame-ancestors naming the parent. Other
// sites can neither frame the route nor sign users in through it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { artifacts, binary, CHROMIUM, CHROMIUM_ARGS, freePort, here, start, tempDir } from './helpers.mjs';

let idp;
let gh;
let browser;
let port;
let token;
const servers = [];

/** The authorization code flow as the parent app's own login does it. */
async function idpToken(issuer, redirectUri, user, resource) {
  const jar = new Map();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  let url = new URL(`${issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: 'gatehouse', response_type: 'code', scope: 'openid email profile groups api',
    redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256',
    login_hint: user, state: 's', nonce: 'n', resource,
  }).toString();
  let code;
  for (let i = 0; i < 20 && !code; i++) {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const pair = c.split(';')[0];
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`no redirect from the IdP: ${res.status} ${await res.text()}`);
    const next = new URL(location, url);
    if (next.href.startsWith(redirectUri)) code = next.searchParams.get('code');
    url = next;
  }
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from('gatehouse:gatehouse-secret').toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, resource }),
  });
  const body = await res.json();
  if (!body.access_token) throw new Error(`token endpoint: ${JSON.stringify(body)}`);
  return body.access_token;
}

function serve(handler) {
  return new Promise((resolve) => {
    const srv = http.createServer(handler);
    srv.listen(0, '127.0.0.1', () => { servers.push(srv); resolve(srv.address().port); });
  });
}

before(async () => {
  port = await freePort();
  const callback = `https://grafana.localhost:${port}/oauth2/callback`;
  idp = await start('node', [join(here, 'idp.mjs'), '--port', '0', '--redirect-uris', callback], /ready (\S+)/);
  const issuer = /ready (\S+)/.exec(idp.output())[1];
  token = await idpToken(issuer, callback, 'alice', 'urn:aud:grafana');

  // The embedded app ("Grafana"): shows who gatehouse says the user is.
  const app = await serve((req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><title>Dashboard</title><h1>Dashboard</h1><p id="who">${req.headers['x-pomerium-claim-email'] ?? 'nobody'}</p>`);
  });
  // The parent app: hands its token to gatehouse once, by a form POST that
  // targets the iframe (an Angular/React app does the same from its code).
  const parent = await serve((req, res) => {
    const grafana = `https://grafana.localhost:${port}`;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    if (req.url === '/plain') {
      res.end(`<!doctype html><title>Plain</title><iframe name="grafana" src="${grafana}/d/home" width="800" height="300"></iframe>`);
      return;
    }
    res.end(`<!doctype html><title>Parent app</title><h1>Parent app</h1>
<form id="handoff" method="post" action="${grafana}/.pomerium/sign_in_with_token" target="grafana">
  <input type="hidden" name="token" value="${token}">
  <input type="hidden" name="pomerium_redirect_uri" value="${grafana}/d/home">
</form>
<iframe name="grafana" width="800" height="300"></iframe>
<script>document.getElementById('handoff').submit();</script>`);
  });

  const dir = tempDir('gatehouse-embed-');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `address: 127.0.0.1:${port}
idp_provider: oidc
idp_provider_url: ${issuer}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
identity_providers:
  keycloak:
    issuer: ${issuer}
    audiences: [grafana]
routes:
  - from: https://parent.localhost
    to: http://127.0.0.1:${parent}
    allow_public_unauthenticated_access: true
  - from: https://evil.localhost
    to: http://127.0.0.1:${parent}
    allow_public_unauthenticated_access: true
  - from: https://grafana.localhost
    to: http://127.0.0.1:${app}
    allow_any_authenticated_user: true
    bearer_token_format: jwt
    pass_identity_headers: true
    jwt_claims_headers: {X-Pomerium-Claim-Email: email}
    cookie_same_site: none
    frame_ancestors: [https://parent.localhost:${port}]
`);
  gh = await start(binary, ['run', '-c', config, '--log-format', 'json'], /gatehouse is listening/);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  gh?.child.kill();
  idp?.child.kill();
  for (const s of servers) s.close();
});

test('a parent page hands its token to an embedded route once; the iframe stays signed in', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const documents = [];
  page.on('response', (r) => { if (r.request().isNavigationRequest()) documents.push(r); });
  await page.goto(`https://parent.localhost:${port}/`);
  const frame = page.frame({ name: 'grafana' });
  await frame.waitForURL(`https://grafana.localhost:${port}/d/home`);
  assert.equal(await frame.locator('#who').textContent(), 'alice@example.com');

  // The hand-off answered 303 with the cookie; the token was in no URL.
  const handoff = documents.find((r) => r.url().endsWith('/.pomerium/sign_in_with_token'));
  assert.equal(handoff.status(), 303);
  const cookie = (await handoff.allHeaders())['set-cookie'];
  assert.match(cookie, /SameSite=None/);
  assert.match(cookie, /Secure/);
  assert.match(cookie, /Partitioned/);
  assert.ok(documents.every((r) => !r.url().includes(token.slice(-16))), 'token never in a URL');
  assert.ok(!gh.output().includes(token.slice(-16)), 'token never logged');

  // The embedded page may be framed by the parent only.
  const dash = documents.find((r) => r.url().endsWith('/d/home'));
  const headers = await dash.allHeaders();
  assert.equal(headers['content-security-policy'], `frame-ancestors https://parent.localhost:${port}`);
  assert.equal(headers['x-frame-options'], undefined);

  // Navigating inside the iframe keeps the session (the cookie, not the token).
  await frame.goto(`https://grafana.localhost:${port}/d/other`);
  assert.equal(await frame.locator('#who').textContent(), 'alice@example.com');
  await page.screenshot({ path: join(artifacts, 'embed-parent.png') });
  await context.close();
});

test('another site can neither frame the route nor sign users in through it', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const statuses = [];
  page.on('response', (r) => { if (r.url().endsWith('/.pomerium/sign_in_with_token')) statuses.push(r.status()); });
  // The same hand-off page, served from evil.localhost: refused (403).
  await page.goto(`https://evil.localhost:${port}/`);
  await page.waitForTimeout(500);
  for (let i = 0; i < 40 && statuses.length === 0; i++) await page.waitForTimeout(100);
  assert.deepEqual(statuses, [403]);
  // A plain iframe from evil.localhost is blocked by frame-ancestors.
  await page.goto(`https://evil.localhost:${port}/plain`);
  await page.waitForTimeout(1000);
  const frame = page.frame({ name: 'grafana' });
  const text = await frame.evaluate(() => document.body?.innerText ?? '').catch(() => '');
  assert.doesNotMatch(text, /Dashboard/);
  await context.close();
});
