"""A minimal OpenID issuer for the API's tests: discovery and a JWKS over real HTTP on loopback,
keys it can rotate while it serves, and tokens signed by them (or forged as an attacker would)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "aether-api"
CLI_CLIENT_ID = "aether-cli"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Key:
    kid: str
    private: Any
    alg: str

    @classmethod
    def rsa(cls) -> Key:
        return cls(uuid.uuid4().hex[:12], rsa.generate_private_key(65537, 2048), "RS256")

    @classmethod
    def ec(cls) -> Key:
        return cls(uuid.uuid4().hex[:12], ec.generate_private_key(ec.SECP256R1()), "ES256")

    def public_jwk(self) -> dict[str, Any]:
        algorithm = (
            jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        )
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class Issuer:
    url: str = ""
    published: list[Key] = field(default_factory=list)
    jwks_requests: int = 0

    def claims(self, sub: str, groups: list[str], **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": sub,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "groups": groups,
            "client_id": CLI_CLIENT_ID,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        sub: str = "dev-1",
        groups: list[str] | None = None,
        key: Key | None = None,
        **claims: Any,
    ) -> str:
        signer = key or self.published[0]
        payload = self.claims(sub, ["developer"] if groups is None else groups, **claims)
        return jwt.encode(
            payload, signer.private, algorithm=signer.alg, headers={"kid": signer.kid}
        )

    def forged(self, alg: str, secret: bytes, sub: str = "dev-1", kid: str | None = None) -> str:
        """A token PyJWT would refuse to make: ``none``, or an HMAC keyed with public bytes."""
        header = {"alg": alg, "typ": "JWT", "kid": kid or self.published[0].kid}
        signing_input = (
            f"{b64url(json.dumps(header).encode())}."
            f"{b64url(json.dumps(self.claims(sub, ['admin'])).encode())}"
        )
        signature = (
            b""
            if alg == "none"
            else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        )
        return f"{signing_input}.{b64url(signature)}"


@contextmanager
def serve_issuer() -> Iterator[Issuer]:
    """The issuer on 127.0.0.1, with one RSA key published."""
    issuer = Issuer(published=[Key.rsa()])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
            elif self.path == "/jwks":
                issuer.jwks_requests += 1
                body = {"keys": [key.public_jwk() for key in issuer.published]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
