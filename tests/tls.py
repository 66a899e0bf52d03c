"""TLS material made in the test: a self-signed CA (trustme), a LIS certificate, a client one."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    """PEM files on disk, as a site would have them, and the CA that signed them."""

    ca: trustme.CA
    ca_file: Path
    client_cert_file: Path  # the client's certificate chain
    client_key_file: Path
    server_cert: trustme.LeafCert

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        """The LIS's side: its certificate for 127.0.0.1; optionally mutual TLS."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context


def make_tls_files(directory: Path, *, server_name: str = "127.0.0.1") -> TlsFiles:
    """A fresh CA in ``directory`` with a LIS certificate for ``server_name`` and a client one."""
    ca = trustme.CA(organization_name="Trygg test CA")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("trygg-gateway.test")
    client_cert_file = directory / "client.pem"
    client_key_file = directory / "client.key"
    client_cert_file.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(client_key_file))
    return TlsFiles(ca, ca_file, client_cert_file, client_key_file, ca.issue_cert(server_name))
