"""Bounded serving (`serving.connections`, `ratelimit`, `openfiles`): a real server on
loopback with small limits, slow clients as raw sockets."""

from __future__ import annotations

import asyncio
import errno
import http.client
import logging
import resource
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_mesh_sdk.serving import openfiles
from mcp_mesh_sdk.serving.limits import ConnectionLimits
from mcp_mesh_sdk.serving.listener import bind_listener
from mcp_mesh_sdk.serving.ratelimit import ACCEPT_ERROR, RateLimitFilter
from mcp_mesh_sdk.serving.server import Hooks, ServiceServer
from mcp_mesh_sdk.serving.systemd import Standing, SystemdReporter
from mcp_mesh_sdk.serving.tls import TlsSettings


async def slow(request: Request) -> PlainTextResponse:
    await asyncio.sleep(1.0)
    return PlainTextResponse("slow")


APP = Starlette(
    routes=[
        Route("/", lambda request: PlainTextResponse("hi")),
        Route("/slow", slow),
    ]
)


@contextmanager
def serving(
    limits: ConnectionLimits | None = None, tls: TlsSettings | None = None
) -> Iterator[tuple[int, ServiceServer]]:
    """A ServiceServer (with `tls`: speaking TLS) on a free loopback port in a thread;
    stopped afterwards."""
    hooks = Hooks(systemd=SystemdReporter(lambda: Standing(True, "serving")))
    server = ServiceServer(APP, hooks, graceful_timeout=1, limits=limits, tls=tls)
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    thread = threading.Thread(target=server.serve_on, args=(listener,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield port, server
    finally:
        server.should_exit = True
        thread.join(10)


def get(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def answer_or_reset(sock: socket.socket) -> bytes:
    try:
        return read_all(sock)
    except ConnectionResetError:
        return b"reset"


def slow_client(port: int) -> socket.socket:
    """A connection that sends half of its request headers and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
    return sock


def test_headers_that_take_too_long_get_408_and_the_connection_closes() -> None:
    with serving(ConnectionLimits(max_connections=10, header_timeout=0.3)) as (port, _):
        sock = slow_client(port)
        started = time.monotonic()
        answer = read_all(sock)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"reason":"the request headers did not arrive within 0.3 s"' in answer
    assert 0.25 < time.monotonic() - started < 3


def test_past_the_limit_the_oldest_waiting_connections_make_room() -> None:
    with serving(ConnectionLimits(max_connections=4, header_timeout=30)) as (port, server):
        slow = [slow_client(port) for _ in range(6)]
        time.sleep(0.2)
        fresh = get(port)
        oldest = [answer_or_reset(sock) for sock in slow[:2]]
        open_after = server.connections.open_connections
        for sock in slow:
            sock.close()
    assert fresh.startswith(b"HTTP/1.1 200 ") and fresh.endswith(b"hi")
    for answer in oldest:  # closed: with a 503, or reset when its bytes were still unread
        assert answer == b"reset" or answer.startswith(b"HTTP/1.1 503 ")
        assert answer == b"reset" or b"more than 4 connections are open" in answer
    assert open_after <= 4
    assert server.connections.closed_over_limit == 3


def test_with_every_connection_busy_a_new_one_is_refused_with_503() -> None:
    with serving(ConnectionLimits(max_connections=2, header_timeout=30)) as (port, _):
        answers: list[bytes] = []
        busy = [threading.Thread(target=lambda: answers.append(get(port, "/slow")))
                for _ in range(2)]  # fmt: skip
        for thread in busy:
            thread.start()
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            refused = answer_or_reset(sock)  # closed before it sent anything
        for thread in busy:
            thread.join(5)
    assert refused.startswith(b"HTTP/1.1 503 ")
    assert [a.endswith(b"slow") for a in answers] == [True, True]  # requests in flight finish


def test_a_kept_alive_connection_serves_request_after_request() -> None:
    with serving(ConnectionLimits(max_connections=4, header_timeout=0.5)) as (port, _):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        bodies, sockets = [], []
        for _ in range(3):
            connection.request("GET", "/")
            bodies.append(connection.getresponse().read())
            sockets.append(connection.sock)
            time.sleep(0.6)  # idle longer than the header timeout: idle is not slow
        connection.close()
    assert bodies == [b"hi", b"hi", b"hi"]
    assert all(sock is sockets[0] for sock in sockets)  # one connection throughout


def record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("asyncio", logging.ERROR, "f", 1, message, None, exc_info)


def test_accept_errors_pass_at_a_bounded_rate_with_a_count_of_the_rest() -> None:
    now = [0.0]
    limiter = RateLimitFilter(interval=10, burst=3, only=(ACCEPT_ERROR,), clock=lambda: now[0])
    error = OSError(errno.EMFILE, "Too many open files")
    passed = [limiter.filter(record(f"{ACCEPT_ERROR}\nsocket: <fd=6>", error)) for _ in range(1000)]
    assert passed.count(True) == 3
    now[0] = 10.0
    line = record(f"{ACCEPT_ERROR}\nsocket: <fd=6>", error)
    assert limiter.filter(line)
    assert line.getMessage() == (
        f"{ACCEPT_ERROR} (997 more suppressed): [Errno 24] Too many open files"
    )
    assert line.exc_info is None  # no traceback per refused connection
    assert limiter.filter(record("some other asyncio error"))  # untouched, never limited


def test_the_open_file_limit_is_raised_to_fit_the_connection_limit(monkeypatch) -> None:
    limits = {"now": (1024, 65536)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: limits.update(now=value))
    assert openfiles.fit_connection_limit(1000, 2048) == 1000
    assert limits["now"][0] == 1000 + 2048 + openfiles.RESERVED_FILES


def test_a_hard_limit_too_low_lowers_the_connection_limit_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 1024))
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: None)
    fitted = openfiles.fit_connection_limit(1000, 2048)
    assert fitted == (1024 - openfiles.RESERVED_FILES) // 2
    assert "raise LimitNOFILE to at least 3304" in caplog.text


@pytest.mark.parametrize("seconds", [0.2])
def test_a_header_timer_is_not_left_behind_by_closed_connections(seconds: float) -> None:
    with serving(ConnectionLimits(max_connections=10, header_timeout=seconds)) as (port, server):
        for _ in range(5):
            slow_client(port).close()
        time.sleep(seconds + 0.3)
        assert server.connections.open_connections == 0
        assert server.connections.closed_slow_headers == 0  # gone before their deadline
