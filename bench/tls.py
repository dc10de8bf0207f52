"""Benchmark: what TLS costs, through the load balancer, side by side with plain HTTP.

One run on loopback, two arms served at once:
- plain: a local HAProxy frontend (plain HTTP) -> an agent without TLS;
- tls: a frontend with `ssl crt` -> an agent with TLS (MCP_MESH_TLS_CERT_FILE), the backend
  server `ssl verify required ca-file ... verifyhost localhost`, health checks over TLS.
HAProxy is otherwise configured as the mesh_loadbalancer role does (keep-alive on both hops,
HAProxy's defaults: `option http-keep-alive`, `http-reuse safe`; its health checks, balance
and stick table), one HAProxy process for both arms, started in the foreground from a config in
a temporary directory (no chroot, user or daemon; no logging in either arm) and stopped by its
PID. A throwaway CA and ECDSA P-256 certificates (SAN localhost, 127.0.0.1) are made with
`cryptography` in the same temporary directory.

Loads (wrk through the LB; LOADS): `/health` and MCP tool calls (write_file and read_file
alternating, every answer checked for a tool error) with keep-alive, and both again with a
new connection per request (`Connection: close`: a full TLS handshake from the client to the
LB per request, which is what TLS costs a client that does not keep its connection).
ROUNDS rounds of WRK_SECONDS per load and arm after a warm-up round, alternating which arm goes
first; medians per arm and the ratio TLS / plain of requests/s and of p50/p99 latency, with
the CPU time HAProxy and the agent spent per request (steadier on a busy machine than
requests/s) and how many connections HAProxy opened to the agent per request.

Writes bench/results/tls.json (about 2 minutes). Run alone: `.venv/bin/python -m bench.tls`.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
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
from typing import Any

from bench.agent import MCP_HEADERS, agent_env, cpu_seconds, free_port, parse_wrk, stop

RESULTS = Path(__file__).parent / "results" / "tls.json"
HAPROXY = "/usr/sbin/haproxy"
ROUNDS = 7
WRK_SECONDS = 2
WARMUP_SECONDS = 1
ARMS = ("plain", "tls")
# name: (path, connections, new connection per request)
LOADS: dict[str, tuple[str, int, bool]] = {
    "health": ("/health", 50, False),
    "mcp_write_read": ("/mcp", 10, False),
    "health_new_connection": ("/health", 10, True),
    "mcp_new_connection": ("/mcp", 10, True),
}
FILE_CONTENT = "mesh benchmark payload\n" * 40  # 920 bytes, as bench.agent's read_file
KEY_KIND = "ECDSA P-256"

# The role's settings (roles/mesh_loadbalancer: defaults and haproxy.cfg.j2), for both arms.
HAPROXY_CONFIG = """\
global
    maxconn 4096
    stats socket {admin} mode 600 level admin
    stats timeout 30s

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

frontend plain
    bind 127.0.0.1:{plain_port}
    default_backend agents_plain

frontend tls
    bind 127.0.0.1:{tls_port} ssl crt {lb_pem}
    default_backend agents_tls
{backends}"""
BACKEND = """
backend agents_{arm}
    balance hdr(Authorization)
    hash-type consistent
    option httpchk
    http-check send meth GET uri /ready
    http-check expect status 200
    http-response set-header X-Mesh-Server %s
    stick-table type string len 128 size 100k expire 30m
    stick match req.hdr(mcp-session-id)
    stick store-response res.hdr(mcp-session-id)
    default-server weight 100 check inter 2000 fastinter 1000 downinter 2000 fall 2 rise 2
    server agent_{arm} 127.0.0.1:{port}{server_tls}
"""
SERVER_TLS = " ssl verify required ca-file {ca} verifyhost localhost"

# Until the runtime serves TLS itself (MCP_MESH_TLS_CERT_FILE), the TLS arm's agent gets it
# from uvicorn's own ssl settings through this launcher (bench only); the result names which.
TLS_SHIM_LAUNCHER = """
import os, sys
import uvicorn
_init = uvicorn.Config.__init__
def _with_tls(self, *args, **kwargs):
    kwargs.setdefault("ssl_certfile", os.environ["MCP_MESH_TLS_CERT_FILE"])
    _init(self, *args, **kwargs)
uvicorn.Config.__init__ = _with_tls
from mcp_mesh_sdk.server import main
sys.exit(main())
"""


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
    """A child with its stderr in `log`, stopped by its PID at the end."""
    with log.open("ab") as stderr:
        started = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        yield started
    finally:
        stop(started)


def answering(port: int, context: ssl.SSLContext, timeout: float = 30.0) -> str | None:
    """ "tls" or "plain": how the agent on `port` answers /ready; None when it does not."""
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
    """Both agents, each with its own data directory; the TLS one from the runtime when it
    serves TLS, else through TLS_SHIM_LAUNCHER. Returns ports, processes and how TLS was made."""
    context = client_context(certs["ca"])
    agents: dict[str, Any] = {"port": {}, "process": {}}
    runtime = [sys.executable, "-m", "mcp_mesh_sdk.server"]
    for arm in ARMS:
        data = workdir / f"data-{arm}"
        data.mkdir()
        (data / "tls-bench.txt").write_text(FILE_CONTENT)
        port = free_port()
        env = agent_env(port, data)
        log = workdir / f"agent-{arm}.log"
        if arm == "plain":
            agents["process"][arm] = stack.enter_context(process(runtime, log, env))
            if answering(port, context) != "plain":
                raise RuntimeError(f"the plain agent did not become ready: {tail(log)}")
        else:
            env["MCP_MESH_TLS_CERT_FILE"] = str(certs["agent"])
            with ExitStack() as attempt:
                started = attempt.enter_context(process(runtime, log, env))
                answer = answering(port, context)
                if answer == "tls":
                    agents["tls_by"] = "the runtime (MCP_MESH_TLS_CERT_FILE)"
                    agents["process"][arm] = started
                    stack.enter_context(attempt.pop_all())
                elif answer is None:
                    raise RuntimeError(f"the TLS agent did not become ready: {tail(log)}")
            if arm not in agents["process"]:  # the runtime ignored the variable: the shim
                port = free_port()
                env["MCP_MESH_PORT"] = str(port)
                shim = [sys.executable, "-c", TLS_SHIM_LAUNCHER]
                agents["process"][arm] = stack.enter_context(process(shim, log, env))
                if answering(port, context) != "tls":
                    raise RuntimeError(f"the TLS agent (bench shim) did not answer: {tail(log)}")
                agents["tls_by"] = "bench shim: uvicorn's ssl_certfile (TLS_SHIM_LAUNCHER)"
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
    ports = {arm: free_port() for arm in ARMS}
    admin = workdir / "admin.sock"
    backends = "".join(
        BACKEND.format(
            arm=arm,
            port=agent_ports[arm],
            server_tls=SERVER_TLS.format(ca=certs["ca"]) if arm == "tls" else "",
        )
        for arm in ARMS
    )
    text = HAPROXY_CONFIG.format(
        admin=admin,
        plain_port=ports["plain"],
        tls_port=ports["tls"],
        lb_pem=certs["lb"],
        backends=backends,
    )
    path = workdir / "haproxy.cfg"
    path.write_text(text)
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


def server_stats(admin: Path) -> dict[str, dict[str, str]]:
    """`show stat` of the two servers: {arm: {field: value}}."""
    lines = admin_command(admin, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    found = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("svname", "").startswith("agent_"):
            found[row["svname"].removeprefix("agent_")] = row
    return found


def wait_servers_up(admin: Path, timeout: float = 20.0) -> None:
    """Both servers UP after a passed health check (over TLS for the TLS arm)."""
    deadline = time.monotonic() + timeout
    stats: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        try:
            stats = server_stats(admin)
        except OSError:
            stats = {}
        if stats and all(
            stats.get(arm, {}).get("status") == "UP"
            and stats.get(arm, {}).get("check_status") == "L7OK"
            for arm in ARMS
        ):
            return
        time.sleep(0.2)
    states = {arm: (row.get("status"), row.get("check_status")) for arm, row in stats.items()}
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


def wrk(url: str, connections: int, seconds: float, script: Path) -> dict[str, float]:
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
               "--latency", "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          timeout=seconds + 60)  # fmt: skip
    try:
        figures = parse_wrk(done.stdout)
    except RuntimeError as error:
        raise RuntimeError(f"{error}\n{done.stderr}") from None
    requests = re.search(r"(\d+) requests in", done.stdout)
    tool_errors = re.search(r"tool errors: (\d+)", done.stdout)
    socket_errors = re.search(r"Socket errors: (.*)", done.stdout)
    figures["requests"] = float(requests.group(1)) if requests else 0.0
    figures["tool_errors"] = float(tool_errors.group(1)) if tool_errors else 0.0
    if socket_errors:
        figures["socket_error_line"] = socket_errors.group(1).strip()  # type: ignore[assignment]
    return figures


def measure(
    arm: str,
    url: str,
    connections: int,
    script: Path,
    seconds: float,
    pids: dict[str, int],
    admin: Path,
) -> dict[str, Any]:
    """One wrk run, with the CPU time HAProxy and the agent spent and HAProxy's new
    connections to the agent, each per request."""
    stat = {who: Path(f"/proc/{pid}/stat") for who, pid in pids.items()}
    cpu_before = {who: cpu_seconds(path.read_text()) for who, path in stat.items()}
    connects_before = int(server_stats(admin)[arm].get("connect") or 0)
    figures: dict[str, Any] = wrk(url, connections, seconds, script)
    connects = int(server_stats(admin)[arm].get("connect") or 0) - connects_before
    requests = max(1.0, figures["requests"])
    for who, path in stat.items():
        spent = cpu_seconds(path.read_text()) - cpu_before[who]
        figures[f"{who}_cpu_us_per_request"] = round(spent / requests * 1e6, 1)
    figures["backend_connects_per_request"] = round(connects / requests, 3)
    return figures


def arm_order(rounds: int) -> list[tuple[str, str]]:
    return [("plain", "tls") if n % 2 == 0 else ("tls", "plain") for n in range(rounds)]


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return round(float(statistics.median(run[key] for run in runs)), 3)

    return {
        "rps_median": median("rps"),
        "p50_ms_median": median("p50_ms"),
        "p99_ms_median": median("p99_ms"),
        "lb_cpu_us_per_request_median": median("lb_cpu_us_per_request"),
        "agent_cpu_us_per_request_median": median("agent_cpu_us_per_request"),
        "backend_connects_per_request_median": median("backend_connects_per_request"),
        "non_2xx_total": sum(run["non_2xx"] for run in runs),
        "tool_errors_total": sum(run["tool_errors"] for run in runs),
        "runs_with_socket_errors": sum(1 for run in runs if run["socket_errors"]),
        "runs": runs,
    }


def compare(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    plain, tls = medians(runs["plain"]), medians(runs["tls"])

    def ratio(key: str) -> float:
        return round(tls[key] / plain[key], 3) if plain[key] else 0.0

    return {
        "plain": plain,
        "tls": tls,
        "rps_ratio": ratio("rps_median"),
        "p50_ratio": ratio("p50_ms_median"),
        "p99_ratio": ratio("p99_ms_median"),
        "lb_cpu_per_request_ratio": ratio("lb_cpu_us_per_request_median"),
        "agent_cpu_per_request_ratio": ratio("agent_cpu_us_per_request_median"),
    }


# -- report --------------------------------------------------------------------------------------


def tables(compared: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    ratios, absolute = [], []
    for load, (_, connections, _new) in LOADS.items():
        figures = compared[load]
        ratios.append([load, connections, figures["rps_ratio"], figures["p50_ratio"],
                       figures["p99_ratio"], figures["lb_cpu_per_request_ratio"],
                       figures["agent_cpu_per_request_ratio"]])  # fmt: skip
        for arm in ARMS:
            arm_figures = figures[arm]
            absolute.append([load, arm, round(arm_figures["rps_median"]),
                             arm_figures["p50_ms_median"], arm_figures["p99_ms_median"],
                             arm_figures["lb_cpu_us_per_request_median"],
                             arm_figures["agent_cpu_us_per_request_median"],
                             arm_figures["backend_connects_per_request_median"]])  # fmt: skip
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
            "title": "each arm (medians)",
            "columns": [
                "load",
                "arm",
                "requests/s",
                "p50 ms",
                "p99 ms",
                "LB CPU µs/request",
                "agent CPU µs/request",
                "LB→agent connects/request",
            ],
            "rows": absolute,
        },
    ]


def reading(compared: dict[str, dict[str, Any]]) -> str:
    """What the ratios say, in one paragraph from this run's figures."""

    def cost(load: str) -> str:
        figures = compared[load]
        return (
            f"requests/s x{figures['rps_ratio']:.2f}, p50 x{figures['p50_ratio']:.2f}, "
            f"p99 x{figures['p99_ratio']:.2f}, LB CPU per request "
            f"x{figures['lb_cpu_per_request_ratio']:.2f}, agent CPU per request "
            f"x{figures['agent_cpu_per_request_ratio']:.2f}"
        )

    tool_ms = compared["mcp_write_read"]["plain"]["agent_cpu_us_per_request_median"] / 1000
    kept = compared["health"]["lb_cpu_per_request_ratio"]
    fresh = compared["health_new_connection"]["lb_cpu_per_request_ratio"]
    price = (
        "the handshakes, not the encryption, are what TLS costs: clients should keep their "
        "connections open"
        if fresh > kept
        else "in this run a handshake per request cost no more than keep-alive's encryption"
    )
    return (
        "TLS / plain, through the LB. With keep-alive on both hops (the role's setting, each "
        "request encrypted twice, client-LB and LB-agent, handshakes amortised): /health "
        f"{cost('health')}; MCP tool calls {cost('mcp_write_read')}. With a new client "
        "connection per request (a full TLS handshake at the LB per request, and with HAProxy's "
        "http-reuse safe a new LB-agent connection too): /health "
        f"{cost('health_new_connection')}; MCP tool calls {cost('mcp_new_connection')}. "
        f"So {price}. A tool call's own work ({tool_ms:.1f} ms of the agent's CPU per call "
        "without TLS) dilutes the cost; /health shows it nearly bare."
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


def check_calls(lb_ports: dict[str, int], ca: Path) -> None:
    """Each arm answers one write_file and one read_file through the LB before any load."""
    for arm, port in lb_ports.items():
        connection: http.client.HTTPConnection
        if arm == "tls":
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
                raise RuntimeError(f"{arm}: a tool call through the LB failed: {response.status}")
        connection.close()


def main() -> dict[str, Any]:
    for tool in ("wrk", HAPROXY):
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
            arm: f"{'https' if arm == 'tls' else 'http'}://127.0.0.1:{lb['ports'][arm]}"
            for arm in ARMS
        }
        scripts = {
            load: lua_script(workdir, load, path, new) for load, (path, _, new) in LOADS.items()
        }
        pids = {arm: {"lb": haproxy.pid, "agent": agents["process"][arm].pid} for arm in ARMS}
        for arm in ARMS:  # warm-up, not counted
            for load, (path, connections, _) in LOADS.items():
                measure(arm, urls[arm] + path, connections, scripts[load], WARMUP_SECONDS,
                        pids[arm], lb["admin"])  # fmt: skip
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            load: {arm: [] for arm in ARMS} for load in LOADS
        }
        for order in arm_order(ROUNDS):
            for arm in order:
                for load, (path, connections, _) in LOADS.items():
                    runs[load][arm].append(
                        measure(
                            arm,
                            urls[arm] + path,
                            connections,
                            scripts[load],
                            WRK_SECONDS,
                            pids[arm],
                            lb["admin"],
                        )
                    )
        haproxy_version = subprocess.run(
            [HAPROXY, "-v"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
        tls_by = agents["tls_by"]
    compared = {load: compare(runs[load]) for load in LOADS}
    result: dict[str, Any] = {
        "benchmark": "tls",
        "title": "TLS",
        "statistic": f"median of {ROUNDS} rounds of {WRK_SECONDS} s per load and arm, "
        "alternating which arm goes first, after a warm-up round",
        "case": "one local HAProxy, the role's settings: plain frontend -> plain agent vs. "
        "TLS frontend -> TLS agent (ssl verify required), keep-alive on both hops, and "
        "a new client connection per request",
        "reading": reading(compared),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "haproxy": haproxy_version,
            "openssl": ssl.OPENSSL_VERSION,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "tls_setup": {"certificates": KEY_KIND, "agent_tls_by": tls_by, **facts},
        "loads": {
            load: {"path": path, "connections": connections, "new_connection_per_request": new}
            for load, (path, connections, new) in LOADS.items()
        },
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
