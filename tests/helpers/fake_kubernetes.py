"""The one faked part of the Vault tests: Kubernetes' TokenReview API, which
OpenBao's kubernetes auth method calls to check a pod's service-account JWT.

    with FakeTokenReview(tmp_path) as k8s:
        k8s.host, k8s.ca_pem                      # for auth/kubernetes/config
        jwt = k8s.service_account_token("apps", "web")   # a token it accepts

Also: ``self_signed`` (a certificate for 127.0.0.1) and ``make_jwt`` (an
RS256 JWT, for the kubernetes and jwt auth methods).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def self_signed(folder: Path, name: str = "fake") -> tuple[Path, Path, str]:
    """(cert file, key file, cert PEM) of a self-signed certificate for 127.0.0.1."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    cert_file.write_text(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str = "test") -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


class FakeTokenReview:
    """An HTTPS TokenReview endpoint on loopback that knows the tokens it issued."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.accepted: dict[str, dict[str, Any]] = {}  # jwt -> status.user
        self.reviews = 0

    def service_account_token(self, namespace: str, name: str, *, accepted: bool = True) -> str:
        uid = str(uuid.uuid4())
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {
            "iss": "kubernetes/serviceaccount",
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "iat": now,
            "exp": now + 3600,
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": uid,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
            },
        }
        token = make_jwt(claims, self.key)
        if accepted:
            self.accepted[token] = {
                "username": f"system:serviceaccount:{namespace}:{name}",
                "uid": uid,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
            }
        return token

    def __enter__(self) -> FakeTokenReview:
        cert_file, key_file, self.ca_pem = self_signed(self.folder, "kubernetes")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.reviews += 1
                user = fake.accepted.get(body.get("spec", {}).get("token", ""))
                status: dict[str, Any] = {"authenticated": user is not None}
                if user is not None:
                    status["user"] = user
                    status["audiences"] = body.get("spec", {}).get("audiences") or []
                answer = json.dumps(
                    {
                        "kind": "TokenReview",
                        "apiVersion": "authentication.k8s.io/v1",
                        "status": status,
                    }
                ).encode()
                self.send_response(201 if self.path == REVIEW_PATH else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
