"""`Authorization: Bearer <token>`: the check the guarded routes of both services share."""

from __future__ import annotations

from starlette.types import Scope

from mcp_mesh_sdk.envreader import Secret
from mcp_mesh_sdk.serving.middleware import header

MISSING = "missing bearer token"
INVALID = "invalid bearer token"


class BearerCheck:
    """Compares the presented token with `token` in constant time; an empty token admits no one."""

    def __init__(self, token: Secret, realm: str | None = None) -> None:
        self.token = token
        self.realm = realm

    def refusal(self, scope: Scope) -> str | None:
        """None when the request carries the token, else why not (MISSING or INVALID)."""
        authorization = header(scope, b"authorization") or ""
        scheme, _, presented = authorization.partition(" ")
        # Compared even when the scheme is wrong, so timing does not tell which part failed.
        matches = self.token.matches(presented.strip())
        if matches and scheme.lower() == "bearer" and self.token.reveal():
            return None
        return INVALID if authorization else MISSING

    def challenge(self) -> dict[str, str]:
        """The `WWW-Authenticate` header a 401 answer carries."""
        realm = f' realm="{self.realm}"' if self.realm else ""
        return {"WWW-Authenticate": f"Bearer{realm}"}
