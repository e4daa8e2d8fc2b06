// A stand-in for GitHub (which cannot run on loopback) implementing the
// parts of its documented OAuth app flow and REST API that gatehouse uses,
// with GitHub Enterprise paths (/login/oauth/*, /api/v3/*). It checks what
// GitHub checks: client credentials, single-use codes bound to the redirect
// URI, bearer tokens.
//
//   node github-standin.mjs --port 0     prints `ready <base URL>`
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const CLIENT = { id: 'gh-client', secret: 'gh-secret' };
const USER = { id: 4242, login: 'octocat', name: 'The Octocat', email: null };
const EMAILS = [
  { email: 'octocat@users.noreply.example', primary: false, verified: true },
  { email: 'octocat@example.com', primary: true, verified: true },
];
const ORGS = [{ login: 'gatehouse-org' }, { login: 'octo-org' }];
const codes = new Map();
const tokens = new Set();

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const json = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
    if (url.searchParams.get('client_id') !== CLIENT.id) return json(400, { error: 'unknown client' });
    const code = randomBytes(10).toString('hex');
    codes.set(code, url.searchParams.get('redirect_uri'));
    const back = new URL(url.searchParams.get('redirect_uri'));
    back.searchParams.set('code', code);
    back.searchParams.set('state', url.searchParams.get('state'));
    res.writeHead(302, { location: back.toString() });
    return res.end();
  }
  if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
    let body = '';
    for await (const chunk of req) body += chunk;
    const form = new URLSearchParams(body);
    const redirect = codes.get(form.get('code'));
    codes.delete(form.get('code'));
    if (form.get('client_id') !== CLIENT.id || form.get('client_secret') !== CLIENT.secret) {
      return json(200, { error: 'incorrect_client_credentials', error_description: 'The client_id and/or client_secret passed are incorrect.' });
    }
    if (!redirect || redirect !== form.get('redirect_uri')) {
      return json(200, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
    }
    const token = `gho_${randomBytes(12).toString('hex')}`;
    tokens.add(token);
    return json(200, { access_token: token, token_type: 'bearer', scope: 'read:org,user:email' });
  }
  const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
  if (!tokens.has(token)) return json(401, { message: 'Bad credentials' });
  if (url.pathname === '/api/v3/user') return json(200, USER);
  if (url.pathname === '/api/v3/user/emails') return json(200, EMAILS);
  if (url.pathname === '/api/v3/user/orgs') return json(200, ORGS);
  return json(404, { message: 'Not Found' });
});

server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`ready http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
