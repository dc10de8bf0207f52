"""Benchmark: what TLS costs, through the load balancer, side by side with plain HTTP.

One run on loopback, two arms served at once by one local HAProxy:
- plain: a plain HTTP frontend -> an agent without TLS;
- tls: a frontend with `ssl crt` -> an agent with TLS (MCP_MESH_TLS_CERT_FILE), the backend
  server `ssl verify required ca-file ... verifyhost localhost`, health checks over TLS.
HAProxy is configured as the mesh_loadbalancer role does (keep-alive on both hops with
HAProxy's defaults `option http-keep-alive` and `http-reuse safe`; the role's health checks,
balance and stick table), started in the foreground from a config in a temporary directory
(no chroot, user or daemon; no logging in either arm) and stopped by its PID. Two settings
differ from the role, both so that a new connection costs a full handshake: the TLS frontend
has `no-tls-tickets` and the global `tune.ssl.cachesize 0` (wrk would otherwise resume its TLS
1.3 sessions). A throwaway CA and ECDSA P-256 certificates (as the lab's; SAN localhost,
127.0.0.1) are made with `cryptography` in the same temporary directory.

Loads (LOADS, wrk through the LB): `/health` and MCP tool calls (write_file and read_file
alternating, every answer checked for a tool error) with keep-alive, and both again with a
new client connection per request (`Connection: close`: a full TLS handshake at the LB per
request; with `http-reuse safe` HAProxy also opens a new connection to the agent for it, with
a resumed TLS session). One more load shows what `http-reuse always` (not the role's setting)
would change for new connections: HAProxy then sends them over its idle connections to the
agent. ROUNDS rounds of WRK_SECONDS per load and arm after a warm-up round, alternating which
arm goes first; medians per arm and the ratio TLS / plain of requests/s and p50/p99 latency,
with the CPU time HAProxy and the agent spent per request (steadier than requests/s on a busy
machine), connections and TLS handshakes per request from HAProxy's counters.

Latency: wrk's percentiles (under load) leave out the connect and the handshake, so for the
new-connection loads p50/p99 come from LATENCY_SAMPLES requests per round and arm made one at
a time by curl, each on a new connection with a full handshake, connect to last byte.

Writes bench/results/tls.json (about 2.5 minutes). Run alone: `.venv/bin/python -m bench.tls`.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from bench.agent import MCP_HEADERS, agent_env, cpu_seconds, free_port, parse_wrk, stop

RESULTS = Path(__file__).parent / "results" / "tls.json"
HAPROXY = "/usr/sbin/haproxy"
ROUNDS = 4
WRK_SECONDS = 2
WARMUP_SECONDS = 1
LATENCY_SAMPLES = 100  # per round, arm and new-connection load
ARMS = ("plain", "tls")


class Load(NamedTuple):
    path: str
    connections: int
    new_connection: bool  # Connection: close, a new client connection per request
    reuse: str = "safe"  # HAProxy's http-reuse towards the agent; safe: the role's (default)


LOADS = {
    "health": Load("/health", 50, False),
    "mcp_write_read": Load("/mcp", 10, False),
    "health_new_connection": Load("/health", 10, True),
    "mcp_new_connection": Load("/mcp", 10, True),
    "health_new_connection_reuse_always": Load("/health", 10, True, "always"),
}
REUSES = ("safe", "always")
FILE_CONTENT = "mesh benchmark payload\n" * 40  # 920 bytes, as bench.agent's read_file
KEY_KIND = "ECDSA P-256"

# The role's settings (roles/mesh_loadbalancer: defaults and haproxy.cfg.j2), for both arms;
# only the cache and tickets differ (see the docstring).
HAPROXY_CONFIG = """\
global
    maxconn 4096
    stats socket {admin} mode 600 level admin
    stats timeout 30s
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-server-options ssl-min-ver TLSv1.2
    tune.ssl.cachesize 0

defaults
    mode http
    option redispatch
    option forwardfor
    retries 3
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout queue 10s
    timeout check 2s
    option idle-close-on-response
{routes}"""
ROUTE = """
frontend {route}
    bind 127.0.0.1:{port}{bind_tls}
    default_backend agents_{route}

backend agents_{route}
    balance hdr(Authorization)
    hash-type consistent{reuse}
    option httpchk
    http-check send meth GET uri /ready
    http-check expect status 200
    http-response set-header X-Mesh-Server %s
    stick-table type string len 128 size 100k expire 30m
    stick match req.hdr(mcp-session-id)
    stick store-response res.hdr(mcp-session-id)
    default-server weight 100 check inter 2000 fastinter 1000 downinter 2000 fall 2 rise 2
    server agent_{route} 127.0.0.1:{agent_port}{server_tls}
"""
BIND_TLS = " ssl crt {lb_pem} ssl-min-ver TLSv1.2 no-tls-tickets"
SERVER_TLS = (
    " ssl verify required ca-file {ca} verifyhost localhost sni str(localhost) check-sni localhost"
)


def tool_call(call_id: int, name: str, arguments: dict[str, str]) -> str:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": call_id,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
    )


WRITE_CALL = tool_call(1, "write_file", {"path": "tls-bench.txt", "content": FILE_CONTENT})
READ_CALL = tool_call(2, "read_file", {"path": "tls-bench.txt"})


def route(arm: str, reuse: str) -> str:
    """A frontend and its backend: one per arm and http-reuse setting."""
    return arm if reuse == "safe" else f"{arm}_reuse_{reuse}"


# -- certificates ------------------------------------------------------------------------------


def make_certificates(workdir: Path) -> dict[str, Path]:
    """A throwaway CA and two server certificates (the LB's, the agent's), each written as
    one PEM with the certificate and its key; the CA's certificate alone in ca.pem."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("mesh bench CA"))
        .issuer_name(name("mesh bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": workdir / "ca.pem"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for role in ("lb", "agent"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(f"mesh bench {role}"))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        paths[role] = workdir / f"{role}.pem"
        paths[role].touch(mode=0o600)
        paths[role].write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key_pem)
    return paths


# -- processes -----------------------------------------------------------------------------------


def client_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def get(port: int, path: str, context: ssl.SSLContext | None) -> int:
    if context is None:
        connection: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=2
        )
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


@contextmanager
def process(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A child with its output in `log`, stopped by its PID at the end."""
    with log.open("ab") as output:
        started = subprocess.Popen(command, env=env, stdout=output, stderr=output)
    try:
        yield started
    finally:
        stop(started)


def answering(port: int, context: ssl.SSLContext, timeout: float = 30.0) -> str | None:
    """How the agent on `port` answers /ready: "tls", "plain", or None (not at all)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kind, via in (("tls", context), ("plain", None)):
            try:
                if get(port, "/ready", via) == 200:
                    return kind
            except (OSError, http.client.HTTPException):
                pass
        time.sleep(0.02)
    return None


def start_agents(stack: ExitStack, workdir: Path, certs: dict[str, Path]) -> dict[str, Any]:
    """Both agents, each with its own data directory; the TLS one with MCP_MESH_TLS_CERT_FILE.
    Returns their ports and processes."""
    context = client_context(certs["ca"])
    agents: dict[str, Any] = {"port": {}, "process": {}}
    runtime = [sys.executable, "-m", "mcp_mesh_sdk.server"]
    for arm in ARMS:
        data = workdir / f"data-{arm}"
        data.mkdir()
        (data / "tls-bench.txt").write_text(FILE_CONTENT)
        port = free_port()
        env = agent_env(port, data)
        if arm == "tls":
            env["MCP_MESH_TLS_CERT_FILE"] = str(certs["agent"])
        log = workdir / f"agent-{arm}.log"
        agents["process"][arm] = stack.enter_context(process(runtime, log, env))
        answer = answering(port, context)
        if answer != arm:
            said = f"answered {answer}" if answer else f"did not answer: {tail(log)}"
            raise RuntimeError(f"the {arm} agent {said}")
        agents["port"][arm] = port
    return agents


def tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def haproxy_config(
    workdir: Path, certs: dict[str, Path], agent_ports: dict[str, int]
) -> dict[str, Any]:
    """HAProxy's config for every route, checked with `haproxy -c`; its path, ports, socket."""
    ports = {route(arm, reuse): free_port() for arm in ARMS for reuse in REUSES}
    admin = workdir / "admin.sock"
    routes = "".join(
        ROUTE.format(
            route=route(arm, reuse),
            port=ports[route(arm, reuse)],
            bind_tls=BIND_TLS.format(lb_pem=certs["lb"]) if arm == "tls" else "",
            reuse="" if reuse == "safe" else f"\n    http-reuse {reuse}",
            agent_port=agent_ports[arm],
            server_tls=SERVER_TLS.format(ca=certs["ca"]) if arm == "tls" else "",
        )
        for arm in ARMS
        for reuse in REUSES
    )
    path = workdir / "haproxy.cfg"
    path.write_text(HAPROXY_CONFIG.format(admin=admin, routes=routes))
    checked = subprocess.run([HAPROXY, "-c", "-q", "-f", str(path)], capture_output=True,
                             text=True, timeout=30)  # fmt: skip
    if checked.returncode != 0:
        raise RuntimeError(f"haproxy -c refused the bench's config: {checked.stderr.strip()}")
    return {"path": path, "ports": ports, "admin": admin}


def admin_command(admin: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(admin))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def proxy_stats(admin: Path) -> dict[tuple[str, str], dict[str, str]]:
    """`show stat`: {(proxy, server or FRONTEND/BACKEND): {field: value}}."""
    lines = admin_command(admin, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = (dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line)
    return {(row["pxname"], row["svname"]): row for row in rows if "svname" in row}


def counters(admin: Path, name: str) -> dict[str, int]:
    """The counters of a route this benchmark reads: client connections and full TLS
    handshakes at the frontend, connections and TLS handshakes to the agent."""
    stats = proxy_stats(admin)
    front = stats[(name, "FRONTEND")]
    server = stats[(f"agents_{name}", f"agent_{name}")]

    def number(row: dict[str, str], field: str) -> int:
        return int(row.get(field) or 0)

    return {
        "client_connections": number(front, "conn_tot"),
        "client_full_handshakes": number(front, "ssl_sess"),
        "client_resumed_handshakes": number(front, "ssl_reused_sess"),
        "agent_connects": number(server, "connect"),
        "agent_full_handshakes": number(server, "ssl_sess"),
        "agent_resumed_handshakes": number(server, "ssl_reused_sess"),
    }


def wait_servers_up(admin: Path, timeout: float = 20.0) -> None:
    """Every server UP after a passed health check (over TLS for the TLS arm)."""
    deadline = time.monotonic() + timeout
    states: dict[str, tuple[str | None, str | None]] = {}
    while time.monotonic() < deadline:
        try:
            stats = proxy_stats(admin)
        except OSError:
            stats = {}
        states = {
            server: (row.get("status"), row.get("check_status"))
            for (_, server), row in stats.items()
            if server.startswith("agent_")
        }
        if len(states) == len(ARMS) * len(REUSES) and all(
            state == ("UP", "L7OK") for state in states.values()
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"HAProxy's servers did not pass their health checks: {states}")


# -- loads ---------------------------------------------------------------------------------------


def lua_script(workdir: Path, name: str, path: str, new_connection: bool) -> Path:
    """wrk's script for a load: the MCP loads alternate write_file and read_file and count
    answers that are not a successful tool result (printed as `tool errors: N`)."""
    lines = []
    if new_connection:
        lines.append('wrk.headers["Connection"] = "close"')
    if path == "/mcp":
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in MCP_HEADERS.items()]
        lines += [
            'wrk.method = "POST"',
            f"local bodies = {{ [[{WRITE_CALL}]], [[{READ_CALL}]] }}",
            "local threads = {}",
            "local sent = 0",
            "errors = 0",
            "function setup(thread) table.insert(threads, thread) end",
            "function request()",
            "  sent = sent + 1",
            "  return wrk.format(nil, nil, nil, bodies[sent % 2 + 1])",
            "end",
            "function response(status, headers, body)",
            "  if status ~= 200 or string.find(body, '\"isError\":true', 1, true)",
            "     or not string.find(body, '\"result\"', 1, true) then",
            "    errors = errors + 1",
            "  end",
            "end",
            "function done(summary, latency, requests)",
            "  local total = 0",
            '  for _, thread in ipairs(threads) do total = total + thread:get("errors") end',
            '  io.write(string.format("tool errors: %d\\n", total))',
            "end",
        ]
    script = workdir / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def wrk(url: str, connections: int, seconds: float, script: Path) -> dict[str, Any]:
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
               "--latency", "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          timeout=seconds + 60)  # fmt: skip
    try:
        figures: dict[str, Any] = dict(parse_wrk(done.stdout))
    except RuntimeError as error:
        raise RuntimeError(f"{error}\n{done.stderr}") from None
    requests = re.search(r"(\d+) requests in", done.stdout)
    tool_errors = re.search(r"tool errors: (\d+)", done.stdout)
    socket_errors = re.search(r"Socket errors: (.*)", done.stdout)
    figures["requests"] = float(requests.group(1)) if requests else 0.0
    figures["tool_errors"] = float(tool_errors.group(1)) if tool_errors else 0.0
    if socket_errors:
        figures["socket_error_line"] = socket_errors.group(1).strip()
    return figures


def curl_command(url: str, path: str, ca: Path, samples: int) -> list[str]:
    """`samples` requests by one curl, one after another, each on a connection of its own
    (`Connection: close`, no TLS session kept): per request its status and the seconds from
    the start of the connect to the last byte. The MCP ones alternate write_file and read_file."""
    command = ["curl", "-s", "--no-sessionid"]
    for call in range(samples):
        if call:
            command.append("--next")
        command += ["-o", "/dev/null", "-w", "%{http_code} %{time_total}\\n", "--max-time", "10",
                    "--cacert", str(ca), "-H", "Connection: close"]  # fmt: skip
        if path == "/mcp":
            command += ["--data-binary", WRITE_CALL if call % 2 == 0 else READ_CALL]
            for name, value in MCP_HEADERS.items():
                command += ["-H", f"{name}: {value}"]
        command.append(url + path)
    return command


def curl_latency(url: str, path: str, ca: Path, samples: int) -> list[float]:
    """Milliseconds of `samples` requests made one at a time, each on a new connection."""
    done = subprocess.run(curl_command(url, path, ca, samples), capture_output=True, text=True,
                          timeout=30 + samples)  # fmt: skip
    found = []
    for line in done.stdout.splitlines():
        status, _, seconds = line.partition(" ")
        if status != "200":
            raise RuntimeError(f"curl {url}{path}: status {status} (exit {done.returncode})")
        found.append(round(float(seconds) * 1000, 3))
    if len(found) != samples:
        raise RuntimeError(f"curl {url}{path}: {len(found)} of {samples} answers")
    return found


def measure(
    name: str,
    url: str,
    load: Load,
    script: Path,
    seconds: float,
    pids: dict[str, int],
    admin: Path,
) -> dict[str, Any]:
    """One wrk run through route `name`, with the CPU time HAProxy and the agent spent and
    HAProxy's connections and handshakes, each per request."""
    stat = {who: Path(f"/proc/{pid}/stat") for who, pid in pids.items()}
    cpu_before = {who: cpu_seconds(path.read_text()) for who, path in stat.items()}
    before = counters(admin, name)
    figures = wrk(url + load.path, load.connections, seconds, script)
    cpu_after = {who: cpu_seconds(path.read_text()) for who, path in stat.items()}
    after = counters(admin, name)
    requests = max(1.0, figures["requests"])
    for who in stat:
        figures[f"{who}_cpu_us_per_request"] = round(
            (cpu_after[who] - cpu_before[who]) / requests * 1e6, 1
        )
    for counter in before:
        figures[f"{counter}_per_request"] = round((after[counter] - before[counter]) / requests, 3)
    return figures


def arm_order(rounds: int) -> list[tuple[str, str]]:
    return [("plain", "tls") if n % 2 == 0 else ("tls", "plain") for n in range(rounds)]


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile (`share` 0.5 for p50)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


PER_REQUEST = (
    "lb_cpu_us_per_request",
    "agent_cpu_us_per_request",
    "client_connections_per_request",
    "client_full_handshakes_per_request",
    "client_resumed_handshakes_per_request",
    "agent_connects_per_request",
    "agent_full_handshakes_per_request",
    "agent_resumed_handshakes_per_request",
)


def by_figure(runs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each figure's values over the runs, in run order: kept in the JSON, left out of the
    report (which lists only the medians)."""
    keys = dict.fromkeys(key for run in runs for key in run)
    return {key: [run.get(key) for run in runs] for key in keys}


def medians(runs: list[dict[str, Any]], latency: list[float] | None = None) -> dict[str, Any]:
    """Medians of an arm's runs. With `latency` (curl's samples, new-connection loads) p50/p99
    are its percentiles; wrk's, which leave out the connect, are kept beside them."""

    def median(key: str) -> float:
        return round(float(statistics.median(run[key] for run in runs)), 3)

    figures: dict[str, Any] = {"rps_median": median("rps")}
    if latency:
        figures["p50_ms"] = percentile(latency, 0.5)
        figures["p99_ms"] = percentile(latency, 0.99)
        figures["latency_from"] = f"curl, {len(latency)} requests one at a time"
        figures["wrk_p50_ms_median_without_connect"] = median("p50_ms")
        figures["wrk_p99_ms_median_without_connect"] = median("p99_ms")
    else:
        figures["p50_ms"] = median("p50_ms")
        figures["p99_ms"] = median("p99_ms")
        figures["latency_from"] = "wrk under load, medians of the runs"
    figures.update({f"{key}_median": median(key) for key in PER_REQUEST})
    figures["non_2xx_total"] = sum(run["non_2xx"] for run in runs)
    figures["tool_errors_total"] = sum(run["tool_errors"] for run in runs)
    figures["runs_with_socket_errors"] = sum(1 for run in runs if run["socket_errors"])
    figures["runs"] = by_figure(runs)
    if latency:
        figures["latency_samples_ms"] = latency
    return figures


def compare(
    runs: dict[str, list[dict[str, Any]]], latency: dict[str, list[float]] | None = None
) -> dict[str, Any]:
    plain = medians(runs["plain"], (latency or {}).get("plain"))
    tls = medians(runs["tls"], (latency or {}).get("tls"))

    def ratio(key: str) -> float:
        return round(tls[key] / plain[key], 3) if plain[key] else 0.0

    return {
        "plain": plain,
        "tls": tls,
        "rps_ratio": ratio("rps_median"),
        "p50_ratio": ratio("p50_ms"),
        "p99_ratio": ratio("p99_ms"),
        "lb_cpu_per_request_ratio": ratio("lb_cpu_us_per_request_median"),
        "agent_cpu_per_request_ratio": ratio("agent_cpu_us_per_request_median"),
    }


# -- report --------------------------------------------------------------------------------------


def tables(compared: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    ratios, absolute = [], []
    for name, load in LOADS.items():
        figures = compared[name]
        ratios.append([name, load.connections, figures["rps_ratio"], figures["p50_ratio"],
                       figures["p99_ratio"], figures["lb_cpu_per_request_ratio"],
                       figures["agent_cpu_per_request_ratio"]])  # fmt: skip
        for arm in ARMS:
            own = figures[arm]
            handshakes = (
                f"{own['client_full_handshakes_per_request_median']:.2f} / "
                f"{own['agent_full_handshakes_per_request_median']:.2f} + "
                f"{own['agent_resumed_handshakes_per_request_median']:.2f}"
                if arm == "tls"
                else "-"
            )
            absolute.append([name, arm, round(own["rps_median"]), own["p50_ms"], own["p99_ms"],
                             own["lb_cpu_us_per_request_median"],
                             own["agent_cpu_us_per_request_median"],
                             own["agent_connects_per_request_median"], handshakes])  # fmt: skip
    return [
        {
            "title": "TLS / plain through the LB (ratios of the medians)",
            "columns": [
                "load",
                "connections",
                "requests/s",
                "p50 latency",
                "p99 latency",
                "LB CPU per request",
                "agent CPU per request",
            ],
            "rows": ratios,
        },
        {
            "title": "each arm (medians; p50/p99 of the new-connection loads by curl, with "
            "the connect and handshake)",
            "columns": [
                "load",
                "arm",
                "requests/s",
                "p50 ms",
                "p99 ms",
                "LB CPU µs/request",
                "agent CPU µs/request",
                "LB→agent connects/request",
                "TLS handshakes/request: client full / agent full + resumed",
            ],
            "rows": absolute,
        },
    ]


def reading(compared: dict[str, dict[str, Any]]) -> str:
    """What the ratios say, in one paragraph from this run's figures."""

    def cost(name: str) -> str:
        figures = compared[name]
        return (
            f"requests/s x{figures['rps_ratio']:.2f}, p50 x{figures['p50_ratio']:.2f}, "
            f"p99 x{figures['p99_ratio']:.2f}, LB CPU per request "
            f"x{figures['lb_cpu_per_request_ratio']:.2f}, agent CPU per request "
            f"x{figures['agent_cpu_per_request_ratio']:.2f}"
        )

    tool_ms = compared["mcp_write_read"]["plain"]["agent_cpu_us_per_request_median"] / 1000
    kept = compared["health"]["rps_ratio"]
    fresh = compared["health_new_connection"]["rps_ratio"]
    price = (
        "the handshakes, not the encryption, are what TLS costs: clients should keep their "
        "connections open"
        if fresh < kept
        else "in this run a handshake per request cost no more than encrypting kept connections"
    )
    safe = compared["health_new_connection"]["tls"]["rps_median"]
    reused = "health_new_connection_reuse_always"
    always = compared[reused]["tls"]["rps_median"]
    return (
        "TLS / plain, through the LB. With keep-alive on both hops (the role's setting, each "
        "request encrypted twice, client-LB and LB-agent, handshakes amortised): /health "
        f"{cost('health')}; MCP tool calls {cost('mcp_write_read')}. With a new client "
        "connection per request (a full TLS handshake at the LB each time, and with "
        "`http-reuse safe` a new LB-agent connection with a resumed TLS session as well): "
        f"/health {cost('health_new_connection')}; MCP tool calls "
        f"{cost('mcp_new_connection')}. So {price}. A tool call's own work "
        f"({tool_ms:.1f} ms of the agent's CPU per call without TLS) dilutes the cost; /health "
        "shows it nearly bare. `http-reuse always` (not the role's setting) sends new client "
        "connections over HAProxy's idle connections to the agent, so the agent does no "
        f"handshake per request: /health over new connections {cost(reused)}, TLS "
        f"requests/s x{always / safe:.2f} of the role's setting. On this machine wrk, "
        "HAProxy and both agents share the CPUs: requests/s and the p99 under load move "
        "between runs (each run is in tls.json); CPU per request is the steadier figure."
    )


def handshake_facts(lb_port: int, agent_port: int, ca: Path) -> dict[str, str]:
    """Protocol and cipher a client negotiates with the LB's TLS frontend and with the agent."""
    facts = {}
    for who, port in (("client_to_lb", lb_port), ("to_agent", agent_port)):
        context = client_context(ca)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as wrapped,
        ):
            cipher = wrapped.cipher()
            facts[f"{who}_protocol"] = str(wrapped.version())
            facts[f"{who}_cipher"] = cipher[0] if cipher else "?"
    return facts


def check_calls(ports: dict[str, int], ca: Path) -> None:
    """Every route answers one write_file and one read_file before any load."""
    for name, port in ports.items():
        connection: http.client.HTTPConnection
        if name.startswith("tls"):
            connection = http.client.HTTPSConnection(
                "127.0.0.1", port, timeout=10, context=client_context(ca)
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for body in (WRITE_CALL, READ_CALL):
            connection.request("POST", "/mcp", body=body, headers=MCP_HEADERS)
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200 or b'"isError":true' in payload:
                raise RuntimeError(f"{name}: a tool call through the LB failed: {response.status}")
        connection.close()


def main() -> dict[str, Any]:
    for tool in ("wrk", "curl", HAPROXY):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as temp, ExitStack() as stack:
        workdir = Path(temp)
        certs = make_certificates(workdir)
        agents = start_agents(stack, workdir, certs)
        lb = haproxy_config(workdir, certs, agents["port"])
        haproxy_log = workdir / "haproxy.log"
        haproxy = stack.enter_context(process([HAPROXY, "-f", str(lb["path"])], haproxy_log))
        try:
            wait_servers_up(lb["admin"])
        except RuntimeError as error:
            raise RuntimeError(f"{error}; haproxy said: {tail(haproxy_log)}") from None
        check_calls(lb["ports"], certs["ca"])
        facts = handshake_facts(lb["ports"]["tls"], agents["port"]["tls"], certs["ca"])
        urls = {
            name: f"{'https' if name.startswith('tls') else 'http'}://127.0.0.1:{port}"
            for name, port in lb["ports"].items()
        }
        scripts = {
            name: lua_script(workdir, name, load.path, load.new_connection)
            for name, load in LOADS.items()
        }
        pids = {arm: {"lb": haproxy.pid, "agent": agents["process"][arm].pid} for arm in ARMS}

        def one(arm: str, name: str, seconds: float) -> dict[str, Any]:
            load = LOADS[name]
            where = route(arm, load.reuse)
            return measure(where, urls[where], load, scripts[name], seconds, pids[arm],
                           lb["admin"])  # fmt: skip

        for arm in ARMS:  # warm-up, not counted
            for name in LOADS:
                one(arm, name, WARMUP_SECONDS)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            name: {arm: [] for arm in ARMS} for name in LOADS
        }
        latency: dict[str, dict[str, list[float]]] = {
            name: {arm: [] for arm in ARMS} for name, load in LOADS.items() if load.new_connection
        }
        for order in arm_order(ROUNDS):
            for arm in order:
                for name, load in LOADS.items():
                    runs[name][arm].append(one(arm, name, WRK_SECONDS))
                    if load.new_connection:
                        where = route(arm, load.reuse)
                        latency[name][arm] += curl_latency(
                            urls[where], load.path, certs["ca"], LATENCY_SAMPLES
                        )
        haproxy_version = subprocess.run(
            [HAPROXY, "-v"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    compared = {name: compare(runs[name], latency.get(name)) for name in LOADS}
    result: dict[str, Any] = {
        "benchmark": "tls",
        "title": "TLS",
        "statistic": f"median of {ROUNDS} rounds of {WRK_SECONDS} s per load and arm, "
        "alternating which arm goes first, after a warm-up round; new-connection latency "
        f"from {LATENCY_SAMPLES} curl requests per round and arm",
        "case": "one local HAProxy with the role's settings: plain frontend -> plain agent vs. "
        "TLS frontend -> TLS agent (ssl verify required), keep-alive on both hops, and a new "
        "client connection per request (full handshake)",
        "reading": reading(compared),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "haproxy": haproxy_version,
            "openssl": ssl.OPENSSL_VERSION,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "tls_setup": {"certificates": KEY_KIND, **facts},
        "loads": {name: load._asdict() for name, load in LOADS.items()},
        **compared,
        "seconds": round(time.monotonic() - started, 1),
        "tables": tables(compared),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop still stops the children
    outcome = main()
    print(outcome["tls_setup"])
    for table in outcome["tables"]:
        print(table["title"])
        for row in table["rows"]:
            print(dict(zip(table["columns"], row, strict=True)))
    print(outcome["reading"])
    print(f"{outcome['seconds']} s")
