"""`Authorization: Bearer <token>`: the check the guarded routes of both services share."""

from __future__ import annotations

from starlette.types import Scope

from mcp_mesh_sdk.envreader import Secret
from mcp_mesh_sdk.serving.middleware import header

MISSING = "missing bearer token"
INVALID = "invalid bearer token"


def presented_token(scope: Scope) -> tuple[str | None, bool]:
    """(what follows the scheme of the Authorization header, None without one; whether the
    scheme is Bearer). The token comes back for a wrong scheme too: the caller checks it all
    the same, so timing does not tell which part failed."""
    authorization = header(scope, b"authorization")
    if not authorization:
        return None, False
    scheme, _, presented = authorization.partition(" ")
    return presented.strip(), scheme.lower() == "bearer"


class BearerCheck:
    """Compares the presented token with `token` in constant time; an empty token admits no one."""

    def __init__(self, token: Secret, realm: str | None = None) -> None:
        self.token = token
        self.realm = realm

    def refusal(self, scope: Scope) -> str | None:
        """None when the request carries the token, else why not (MISSING or INVALID)."""
        presented, is_bearer = presented_token(scope)
        if presented is None:
            return MISSING
        if self.token.matches(presented) and is_bearer and self.token.reveal():
            return None
        return INVALID

    def challenge(self) -> dict[str, str]:
        """The `WWW-Authenticate` header a 401 answer carries."""
        realm = f' realm="{self.realm}"' if self.realm else ""
        return {"WWW-Authenticate": f"Bearer{realm}"}
