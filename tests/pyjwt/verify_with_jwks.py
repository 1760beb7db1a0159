"""Verifies authgate's tokens the way a backend that trusts authgate would: PyJWT's
PyJWKClient fetches the JWK Set over HTTP, picks the key by the token's kid, and
jwt.decode checks the signature, exp, iss and aud.

Usage: verify_with_jwks.py JWKS_URL ALG < cases.json
cases.json is a list of {"token", "issuer", "audience"}; prints one JSON result per case,
as a list: {"ok": true, "kid", "claims"} or {"ok": false, "error": "<PyJWT exception>"}.
"""

import json
import sys

import jwt
from jwt import PyJWKClient


def main() -> None:
    jwks_url, algorithm = sys.argv[1], sys.argv[2]
    client = PyJWKClient(jwks_url, cache_keys=False)
    results = []
    for case in json.load(sys.stdin):
        try:
            signing_key = client.get_signing_key_from_jwt(case["token"])
            claims = jwt.decode(
                case["token"],
                signing_key.key,
                algorithms=[algorithm],
                issuer=case["issuer"],
                audience=case["audience"],
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            results.append({"ok": True, "kid": signing_key.key_id, "claims": claims})
        except jwt.PyJWTError as e:
            results.append({"ok": False, "error": type(e).__name__})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
