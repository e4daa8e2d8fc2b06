// A real OpenID Provider for the tests: the certified `oidc-provider`
// package, on loopback, with test accounts. Interactions complete without a
// form: the account is `login_hint` (default alice), consent is granted.
//
//   node idp.mjs --port 0 --redirect-uris https://app.localhost:8443/oauth2/callback[,...]
//
// Prints `ready <issuer>` once listening. Short token lifetimes so refresh
// can be tested; RP-initiated logout enabled.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'redirect-uris': { type: 'string', default: '' },
    'post-logout-redirect-uris': { type: 'string', default: '' },
    'access-token-ttl': { type: 'string', default: '120' },
    // A new signing key at every start (to test key rotation).
    'fresh-keys': { type: 'boolean', default: false },
    // Ask who signs in with a form (browser tests with several users)
    // instead of taking `login_hint`.
    'login-form': { type: 'boolean', default: false },
    // A second client (`id:secret`), as a route's own client.
    'second-client': { type: 'string', default: '' },
  },
});

const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', groups: ['staff', 'admins'] },
  bob: { email: 'bob@example.org', email_verified: true, name: 'Bob Builder', groups: [] },
};
// Keycloak-style roles, carried in JWT access tokens.
const ROLES = { alice: ['grafana-editor', 'offline_access'], bob: ['offline_access'] };

const server = http.createServer();
await new Promise((r) => server.listen(Number(values.port), '127.0.0.1', r));
const issuer = `http://127.0.0.1:${server.address().port}`;

const client = (client_id, client_secret) => ({
  client_id,
  client_secret,
  redirect_uris: values['redirect-uris'].split(',').filter(Boolean),
  post_logout_redirect_uris: values['post-logout-redirect-uris'].split(',').filter(Boolean),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
});
const clients = [client('gatehouse', 'gatehouse-secret')];
if (values['second-client']) {
  const [id, secret] = values['second-client'].split(':');
  clients.push(client(id, secret));
}

const provider = new Provider(issuer, {
  clients,
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'api'],
  pkce: { required: () => true },
  // JWT access tokens, the way Keycloak issues them: a token requested with
  // `resource=urn:aud:<name>` has `aud: <name>` (`urn:aud:account` gives
  // Keycloak's default `aud: account`) and carries the user's email,
  // groups and realm roles.
  async extraTokenClaims(ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const a = ACCOUNTS[token.accountId];
    if (!a) return undefined;
    return {
      email: a.email, name: a.name, groups: a.groups,
      preferred_username: token.accountId,
      realm_access: { roles: ROLES[token.accountId] ?? [] },
    };
  },
  features: {
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        const m = /^urn:aud:(.+)$/.exec(resource);
        if (!m) throw new errors.InvalidTarget();
        return {
          scope: 'api',
          audience: m[1],
          accessTokenFormat: 'jwt',
          accessTokenTTL: Number(values['access-token-ttl']),
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true, logoutSource: async (ctx, form) => {
      // Submit the logout confirmation form automatically.
      ctx.body = `<!doctype html><html><body>${form}<script>document.forms[0].submit()</script></body></html>`;
    } },
  },
  ttl: { AccessToken: Number(values['access-token-ttl']), IdToken: 3600, RefreshToken: 86400, Session: 86400, Grant: 86400, Interaction: 600 },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  conformIdTokenClaims: false,
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['gatehouse-test-idp-cookie-key'] },
  ...(values['fresh-keys'] ? { jwks: { keys: [freshKey()] } } : {}),
});

function freshKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
}
provider.proxy = false;

server.on('request', async (req, res) => {
  const m = /^\/interaction\/([^/?]+)/.exec(req.url);
  if (!m) return provider.callback()(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params } = details;
    if (prompt.name === 'login' && values['login-form'] && req.method === 'GET') {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      return res.end(`<!doctype html><title>Test IdP</title><form method=post action="/interaction/${m[1]}">
<label for=login>Account</label> <input id=login name=login autofocus> <button type=submit>Sign in</button></form>`);
    }
    if (prompt.name === 'login') {
      let hint = params.login_hint;
      if (values['login-form'] && req.method === 'POST') {
        let body = '';
        for await (const chunk of req) body += chunk;
        hint = new URLSearchParams(body).get('login');
      }
      const accountId = ACCOUNTS[hint] ? hint : 'alice';
      return await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
});

process.stdout.write(`ready ${issuer}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
