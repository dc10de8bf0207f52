"""Room in the file-descriptor limit for the connection limit, with files to spare.

Out of descriptors, accept() fails (asyncio then logs and retries) and, worse, whatever else
opens a file fails too: the agent's MCP engine, importing the SDK in a worker thread, died
of EMFILE under a flood. So a service raises its soft RLIMIT_NOFILE as far as it needs (the
hard limit, systemd's LimitNOFILE, allows) and, if that is still short, serves fewer
connections than asked and says so. The need: the connection limit, plus one accept burst
(asyncio accepts up to the listen backlog before the guard can close any), plus
RESERVED_FILES for everything else (logs, the database, imports, the file tools).
"""

from __future__ import annotations

import logging
import resource

RESERVED_FILES = 256
MIN_CONNECTIONS = 16

logger = logging.getLogger("mcp_mesh_sdk.serving")


def files_needed(max_connections: int, backlog: int) -> int:
    return max_connections + backlog + RESERVED_FILES


def fit_connection_limit(max_connections: int, backlog: int) -> int:
    """The connection limit this process can keep: `max_connections`, or fewer (with a
    warning) when RLIMIT_NOFILE cannot be raised far enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = files_needed(max_connections, backlog)
    if soft != resource.RLIM_INFINITY and soft < need:
        wanted = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (OSError, ValueError) as exc:
            logger.warning("cannot raise the open-file limit to %d: %s", wanted, exc)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return max_connections
    # Half of what is left after the reserve: the other half absorbs most of an accept burst.
    fitting = min(max_connections, max(MIN_CONNECTIONS, (soft - RESERVED_FILES) // 2))
    logger.warning(
        "the open-file limit %d is below the %d this connection limit needs: serving at most "
        "%d connections instead of %d; raise LimitNOFILE to at least %d",
        soft, need, fitting, max_connections, need,
    )  # fmt: skip
    return fitting
