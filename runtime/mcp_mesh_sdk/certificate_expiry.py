"""The certificate-expiry reader, imported only when a service has a certificate: certificates.py
brings the cryptography package (about 15 MB of a service's memory), which a plain-HTTP agent
or registry never needs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_mesh_sdk.certificates import CertificateExpiry


def certificate_expiry(cert_file: Path) -> CertificateExpiry:
    from mcp_mesh_sdk.certificates import CertificateExpiry

    return CertificateExpiry(cert_file)
