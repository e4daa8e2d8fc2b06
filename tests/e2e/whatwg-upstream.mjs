// An upstream that reads its request the way Node, Deno and Bun apps do:
// `new URL(req.url, base)` (WHATWG: `\` is `/`, dot segments resolved,
// `%2e` is a dot), then serves a page per pathname, like an Express-style
// router. The security tests check that no spelling of a request reaches
// `/admin` here through gatehouse unless its policy allowed `/admin`.
//
//   node whatwg-upstream.mjs    prints `ready <port>` once listening
import http from 'node:http';

const server = http.createServer((req, res) => {
  const pathname = new URL(req.url, 'http://upstream.invalid').pathname;
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    decoded = pathname;
  }
  const body = JSON.stringify({
    raw: req.url,
    pathname,
    decoded,
    admin: decoded.startsWith('/admin') || decoded.startsWith('//admin'),
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => {
  console.log(`ready ${server.address().port}`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
