// Verifies gatehouse assertions with the independent `jose` library the way
// an application does: createRemoteJWKSet against gatehouse's JWKS URL, then
// jwtVerify with issuer and audience.
//   node verify-remote.mjs JWKS_URL CA_FILE ISSUER AUDIENCE < tokens
// Tokens one per line; prints one JSON line per token:
//   {"ok":true,"payload":{...},"protectedHeader":{...}} or {"ok":false,"error":"..."}
// The fetch trusts CA_FILE and resolves *.localhost to 127.0.0.1 (RFC 6761),
// which Node's resolver does not do by itself.
import { readFileSync } from 'node:fs';
import { lookup as dnsLookup } from 'node:dns';
import https from 'node:https';
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose';

const [jwksUrl, caFile, issuer, audience] = process.argv.slice(2);
const ca = readFileSync(caFile);
const lookup = (host, options, cb) =>
  dnsLookup(host === 'localhost' || host.endsWith('.localhost') ? '127.0.0.1' : host, options, cb);

let fetches = 0;
function fetchWithCa(url, { headers, signal }) {
  fetches += 1;
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, lookup, signal, headers: Object.fromEntries(new Headers(headers)) }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: res.headers })));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const keys = createRemoteJWKSet(new URL(jwksUrl), { [customFetch]: fetchWithCa });
const input = readFileSync(0, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
for (const token of input) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, keys, { issuer, audience, algorithms: ['ES256'] });
    process.stdout.write(`${JSON.stringify({ ok: true, payload, protectedHeader })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: `${e.code ?? e.name}: ${e.message}` })}\n`);
  }
}
process.stderr.write(`jwks fetches: ${fetches}\n`);
