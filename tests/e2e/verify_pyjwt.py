"""Verifies gatehouse assertions with PyJWT the way a Python app does:
PyJWKClient against gatehouse's JWKS URL, then jwt.decode with issuer and
audience.

    python verify_pyjwt.py JWKS_URL CA_FILE ISSUER AUDIENCE < tokens

Tokens one per line; prints one JSON line per token:
{"ok": true, "claims": {...}} or {"ok": false, "error": "..."}.
The client trusts CA_FILE and resolves *.localhost to 127.0.0.1 (RFC 6761),
which the system resolver does not do by itself.
"""

import json
import socket
import ssl
import sys

import jwt

_system_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
        host = "127.0.0.1"
    return _system_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


def main():
    url, ca_file, issuer, audience = sys.argv[1:5]
    client = jwt.PyJWKClient(url, ssl_context=ssl.create_default_context(cafile=ca_file))
    for line in sys.stdin:
        token = line.strip()
        if not token:
            continue
        try:
            key = client.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                issuer=issuer,
                audience=audience,
                leeway=60,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            print(json.dumps({"ok": True, "claims": claims}), flush=True)
        except Exception as e:  # every refusal is reported, none is fatal
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)


if __name__ == "__main__":
    main()
