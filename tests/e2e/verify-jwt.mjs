// Verifies a gatehouse assertion with the independent `jose` library:
//   node verify-jwt.mjs JWKS_FILE TOKEN ISSUER AUDIENCE
// Prints {payload, protectedHeader} as JSON, or the error and exit 1.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify } from 'jose';

const [jwksPath, token, issuer, audience] = process.argv.slice(2);
const keys = createLocalJWKSet(JSON.parse(readFileSync(jwksPath, 'utf8')));
try {
  const { payload, protectedHeader } = await jwtVerify(token, keys, { issuer, audience, algorithms: ['ES256'] });
  process.stdout.write(JSON.stringify({ payload, protectedHeader }));
} catch (e) {
  process.stderr.write(`${e.code ?? 'error'}: ${e.message}\n`);
  process.exit(1);
}
