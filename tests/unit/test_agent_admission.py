"""/mcp admission (`agent.admission`): request bodies held at once stay within a byte budget;
what does not fit in time gets a clear 503 `busy`, after its body was read and dropped."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp_mesh_sdk.agent.admission import BodyAdmission, ByteBudget


def test_the_budget_admits_what_fits_and_times_out_the_rest() -> None:
    async def main() -> list[Any]:
        budget = ByteBudget(10)
        first = await budget.acquire(6, wait=0.1)
        refused = await budget.acquire(6, wait=0.1)
        small = await budget.acquire(4, wait=0.1)
        await budget.release(6)
        after_release = await budget.acquire(6, wait=0.1)
        return [first, refused, small, after_release, budget.held]

    assert asyncio.run(main()) == [6, None, 4, 6, 10]


def test_a_body_larger_than_the_budget_runs_alone() -> None:
    async def main() -> list[Any]:
        budget = ByteBudget(10)
        small = await budget.acquire(1, wait=0.1)
        waiting = asyncio.create_task(budget.acquire(50, wait=1.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await budget.release(1)
        return [small, await waiting]

    assert asyncio.run(main()) == [1, 10]


def call(admission: BodyAdmission, length: int, body_chunks: int = 3) -> tuple[int, Any, int]:
    """One POST through `admission` to an app that holds the budget while another request
    comes; (status, JSON body, chunks read) of the second request."""

    async def main() -> tuple[int, Any, int]:
        release = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await release.wait()

        scope = {"type": "http", "method": "POST",
                 "headers": [(b"content-length", str(length).encode())]}  # fmt: skip
        first = asyncio.create_task(admission(scope, _receive([b"x"]), _sink([]), app))
        await asyncio.sleep(0.01)
        chunks = [b"y"] * body_chunks
        sent: list[dict[str, Any]] = []
        await admission(scope, _receive(chunks), _sink(sent), app)
        release.set()
        await first
        body = json.loads(b"".join(m.get("body", b"") for m in sent))
        return sent[0]["status"], (body, dict(sent[0]["headers"])), len(chunks)

    return asyncio.run(main())


def _receive(chunks: list[bytes]) -> Any:
    async def receive() -> dict[str, Any]:
        body = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    return receive


def _sink(sent: list[dict[str, Any]]) -> Any:
    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    return send


def test_a_request_over_the_budget_gets_503_busy_with_retry_after() -> None:
    admission = BodyAdmission(budget_bytes=100, body_limit=1000, wait=0.1)
    status, (body, headers), unread = call(admission, length=80)
    assert status == 503
    assert body["error"] == "busy"
    assert "MCP_MESH_MAX_BUFFERED_BYTES" in body["reason"]
    assert headers[b"retry-after"] == b"1"
    assert unread == 0  # the body was read (and dropped) so the client sees the answer
    assert admission.refused == 1
    assert admission.budget.held == 0  # everything given back
