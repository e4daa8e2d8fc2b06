// One gatehouse for the layout and accessibility tests: the built-in user
// directory (alice in admins, bob not), the console, and file routes that
// give every page gatehouse has: a named and an unnamed route, one alice may
// not open (403), one whose upstream is down (502), and a host with no
// route (404). Fixed names and data, so screenshots compare across runs.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binary, freePort, start, tempDir } from './helpers.mjs';

export const PASSWORD = 'correct horse battery staple';

export async function startSite() {
  const port = await freePort();
  const dead = await freePort(); // nothing listens: the 502 route's upstream
  const upstream = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end('the app\n');
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const to = `http://127.0.0.1:${upstream.address().port}`;
  const hash = execFileSync(binary, ['hash-password'], { input: PASSWORD }).toString().trim();
  const dir = tempDir('gatehouse-site-');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `address: 127.0.0.1:${port}
idp_provider: local
local_users:
  - username: alice
    email: alice@example.com
    name: Alice Liddell
    groups: [staff, admins]
    password_hash: '${hash}'
  - username: bob
    email: bob@example.org
    name: Bob Builder
    groups: []
    password_hash: '${hash}'
console:
  from: https://console.localhost
  policy:
    allow:
      and:
        - groups: {has: admins}
routes:
  - name: Wiki
    from: https://wiki.localhost
    to: ${to}
    allow_any_authenticated_user: true
  - from: https://grafana.localhost
    prefix: /dashboards/
    to: ${to}
    allowed_domains: [example.com]
  - name: Payroll
    from: https://payroll.localhost
    to: ${to}
    allowed_users: [carol@example.com]
  - name: Reports (upstream down)
    from: https://reports.localhost
    to: http://127.0.0.1:${dead}
    allow_any_authenticated_user: true
`);
  const gh = await start(binary, ['run', '-c', config], /gatehouse is listening/);
  return {
    port,
    output: gh.output,
    url: (host, path = '/') => `https://${host}.localhost:${port}${path}`,
    stop() {
      gh.child.kill();
      upstream.close();
    },
  };
}

/** Signs `page` in as `user` through gatehouse's own form, from `target`. */
export async function signIn(page, target, user = 'alice') {
  await page.goto(target);
  await page.fill('#username', user);
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/.pomerium/sign_in')), page.click('button[type=submit]')]);
}
