"""A self-signed serving certificate for the stand-in's HTTPS listener (what in-cluster clients talk to).

In-cluster config (`kubernetes.config.load_incluster_config`) always uses https://$KUBERNETES_SERVICE_HOST and
verifies the server against the service account's ca.crt, hostname included; so the certificate names every
address a client may use: host.docker.internal (containers), 127.0.0.1 and localhost (the host), and the
cluster-internal names of the `kubernetes` Service.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

SERVING_NAMES = ("host.docker.internal", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")
SERVING_IPS = ("127.0.0.1",)


def write_self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files in `folder`; the certificate is its own CA (ca.crt for the service account)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-standin")])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName(n) for n in SERVING_NAMES] + [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVING_IPS]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "serving.crt", folder / "serving.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path
