"""Who is calling: the agent's clients, each with a token of its own, known only by its hash.

The clients file (MCP_MESH_CLIENTS_FILE, written by the role from `mesh_agent_clients`) holds
one client a line, `name sha256-hex-of-its-token`; `#` starts a comment. The host never holds
a client's token, so a copy of the file lets no one in. A plain SHA-256 is enough because the
tokens are long random strings (the role asks for 32 characters or more): a salt or a slow hash
defends guessable passwords, which these are not, and an unsalted digest lets the agent hash
the presented token once and look it up in a dict, so the time a check takes does not depend
on which client (or how many) the file names.

MCP_MESH_TOKEN is accepted too, as the client `operator` (the host's own commands: the release
smoke test, `mcp-mesh-sdk security`, mesh-ops). Without clients it is the one token every
client shares, named `default`: the deprecated set-up of earlier releases.

`ClientTokens` re-reads the file when it changes (its inode, size or modification time; looked
at no more than once a second, on a request), so a client added or revoked by the role counts
within about a second, with no restart and no request dropped. A file that does not parse
leaves the last good set in force and logs an error; check-config refuses such a file before
the role puts it in place.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mcp_mesh_sdk.envreader import Secret

logger = logging.getLogger("mcp_mesh_sdk.agent.clients")

ANONYMOUS = "anonymous"  # the name of a request without a valid token
OPERATOR = "operator"  # MCP_MESH_TOKEN once the clients have tokens of their own
DEFAULT = "default"  # MCP_MESH_TOKEN as the one token every client shares (deprecated)
RESERVED_NAMES = frozenset({ANONYMOUS, OPERATOR, DEFAULT})
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_DIGEST_PATTERN = re.compile(r"^[0-9a-f]{64}$")
CHECK_INTERVAL = 1.0  # seconds between two looks at the file
NO_CLIENTS_WARNING = (
    "no clients: every client shares MCP_MESH_TOKEN, which is deprecated; give each client "
    "a token of its own (mesh_agent_clients, see docs/runbooks/client-tokens.md)"
)


class ClientsFileError(ValueError):
    """Why a clients file cannot be used. Never quotes a line: one could hold a token."""


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_clients(text: str) -> dict[bytes, str]:
    """{sha256 digest: client name} of a clients file's text; raises ClientsFileError."""
    clients: dict[bytes, str] = {}
    names: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        parts = content.split()
        if len(parts) != 2:
            raise ClientsFileError(f"line {number}: expected `name sha256-hex`")
        name, hex_digest = parts
        if not NAME_PATTERN.match(name):
            raise ClientsFileError(
                f"line {number}: a client name is 1-63 letters, digits, '.', '_' or '-'"
            )
        if name in RESERVED_NAMES:
            raise ClientsFileError(f"line {number}: the name {name!r} is reserved")
        if not _DIGEST_PATTERN.match(hex_digest):
            raise ClientsFileError(
                f"line {number} ({name}): expected the token's SHA-256 as 64 lowercase hex "
                "digits (the file holds hashes, never tokens)"
            )
        if name in names:
            raise ClientsFileError(f"line {number}: client {name!r} is named twice")
        key = bytes.fromhex(hex_digest)
        if key in clients:
            raise ClientsFileError(
                f"line {number} ({name}): same token as {clients[key]!r}; each client needs its own"
            )
        names.add(name)
        clients[key] = name
    return clients


def read_clients_file(path: Path) -> dict[bytes, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientsFileError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from exc
    except UnicodeDecodeError as exc:
        raise ClientsFileError(f"{path} is not UTF-8 text") from exc
    return parse_clients(text)


@dataclass(frozen=True)
class _Snapshot:
    from_file: dict[bytes, str]  # the clients file's, as parsed
    by_digest: dict[bytes, str]  # those and MCP_MESH_TOKEN's: what identify() looks up


class ClientTokens:
    """The tokens the agent accepts and whose they are: MCP_MESH_TOKEN and the clients file's."""

    def __init__(
        self,
        operator_token: Secret,
        clients_file: Path | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._operator = operator_token
        self._operator_digest = digest(operator_token.reveal())
        self.path = clients_file
        self._clock = clock
        self._stamp: tuple[int, int, int, int] | None = None
        self._next_check = 0.0
        self._missing_logged = False
        self._snapshot = self._build({})
        if clients_file is not None:
            self._next_check = float("-inf")
            self.refresh(log_changes=False)

    @property
    def clients(self) -> list[str]:
        """The clients of the file in force, by name (the operator's token not among them)."""
        return sorted(self._snapshot.from_file.values())

    def identify(self, presented: str) -> str | None:
        """The name of the client whose token `presented` is, or None.

        One hash and one dict lookup whatever the number of clients: the lookup compares
        digests, and the digest of a random token tells nothing about the token, so its
        timing leaks nothing a caller could use. An empty MCP_MESH_TOKEN admits no one."""
        self.refresh()
        if not self._operator.reveal():
            return None
        return self._snapshot.by_digest.get(digest(presented))

    def refresh(self, *, log_changes: bool = True) -> None:
        """Re-read the clients file when it changed, at most once every CHECK_INTERVAL."""
        if self.path is None:
            return
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_INTERVAL
        problem: str | None = None
        stamp: tuple[int, int, int, int] | None = None
        try:
            info = self.path.stat()
        except OSError as exc:
            problem = f"cannot read {self.path}: {exc.strerror}"
        else:
            stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if stamp == self._stamp and (stamp is not None or self._missing_logged):
            return
        self._stamp = stamp
        if problem is None:
            try:
                clients = read_clients_file(self.path)
            except ClientsFileError as exc:
                problem = str(exc)
            else:
                self._missing_logged = False
                self._install(clients, log_changes)
                return
        self._missing_logged = stamp is None
        logger.error(
            "clients file %s not used (%s); the clients of the last good one stay in force",
            self.path,
            problem,
            extra={"fields": {"clients_file": str(self.path)}},
        )

    def _install(self, clients: dict[bytes, str], log_changes: bool) -> None:
        previous = self._snapshot.from_file
        before = set(previous.values())
        self._snapshot = self._build(clients)
        after = set(clients.values())
        if log_changes and clients != previous:  # a new token for a client counts too
            added, removed = sorted(after - before), sorted(before - after)
            logger.warning(
                "clients file %s reloaded: %d client(s); added %s, revoked %s",
                self.path,
                len(after),
                ", ".join(added) or "none",
                ", ".join(removed) or "none",
                extra={"fields": {"clients_added": added, "clients_revoked": removed}},
            )

    def _build(self, clients: dict[bytes, str]) -> _Snapshot:
        by_digest = dict(clients)
        if self._operator_digest in by_digest:
            logger.error(
                "client %r has MCP_MESH_TOKEN as its token: it is named %s",
                by_digest[self._operator_digest],
                OPERATOR,
            )
        by_digest[self._operator_digest] = OPERATOR if clients else DEFAULT
        return _Snapshot(dict(clients), by_digest)
