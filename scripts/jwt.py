#!/usr/bin/env python3
"""Mint an HS256 JWT for the Todo Chatbot API (standard library only).

    python3 scripts/jwt.py SECRET USER [--hours 12] [--aud A] [--iss I]

Prints the token; send it as `Authorization: Bearer <token>`. SECRET is the
`jwt_secret` variable the server runs with; USER becomes `sub`.
"""
import argparse
import base64
import hashlib
import hmac
import json
import time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("secret")
    parser.add_argument("user")
    parser.add_argument("--hours", type=float, default=12)
    parser.add_argument("--aud")
    parser.add_argument("--iss")
    args = parser.parse_args()
    claims = {"sub": args.user, "exp": int(time.time() + args.hours * 3600)}
    if args.aud:
        claims["aud"] = args.aud
    if args.iss:
        claims["iss"] = args.iss
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(args.secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    print(f"{head}.{body}.{sig}")


if __name__ == "__main__":
    main()
