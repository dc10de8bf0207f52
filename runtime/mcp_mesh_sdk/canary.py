"""Canary analysis: judge a new release by the real traffic of one host (the canary).

After a rolling upgrade puts the canary back in the load balancer, `analyse()` scrapes the
canary's Prometheus `/metrics` (and those of baseline agents, the hosts still on the old
release) every `interval` seconds for `window` seconds, and judges the figures of the window
so far at every poll, the way Flagger, Argo Rollouts and Kayenta do.

Figures (summed over every operation):

* calls = `mcp_mesh_agent_operations_total` over the outcomes `ok`, `client_error` and
  `server_error` (other outcomes are ignored); latency comes from the histogram
  `mcp_mesh_agent_operation_duration_seconds`; the version from `mcp_mesh_agent_info`.
* The window's figures are the increase of those counters since the first scrape, like
  Prometheus' `increase()`: between two scrapes, a counter that went down, or a changed
  `mcp_mesh_agent_start_time_seconds`, means the agent restarted, and what it counts since
  the restart is added (never a negative delta).
* server-error ratio = server errors / calls. Client errors are calls, never failures.
* p95 = Prometheus' `histogram_quantile(0.95, ...)` over the window's bucket increases
  (linear interpolation inside the bucket); avg = duration sum / duration count.
* The baseline is the sum of the baseline agents' windows (so its p95 is that of
  `sum by (le)`). A baseline counts only with at least `baseline_min_calls` (5) calls.

Rules, evaluated at every poll on the window so far; the first check that fails ends the
analysis at once with `fail` (an early abort when the window is not over):

1. errors: fail when the canary has >= `min_errors` (5) server errors AND its ratio is
   > `error_rate` (5 %, the seed's PerformanceAlerting threshold) AND (there is no baseline,
   or the ratio is > the baseline's ratio x `baseline_factor` (2)).
2. latency: only with >= `min_calls_latency` (5) timed calls on the canary; fail when its
   p95 > `p95_ms` (2000 ms, seed) or its avg > `avg_ms` (1000 ms, seed), OR (with a
   baseline) its p95 > the baseline's p95 x `latency_factor` (2) AND exceeds it by more
   than `latency_margin_ms` (100 ms). The margin keeps noise (5 ms against 9 ms) a pass;
   0.5 s added to every call is a fail.
3. availability: a poll where the canary's `/metrics` does not answer (two attempts) is a
   fail. An unreachable canary at the start is an error (`OpsError`), not a verdict, and so
   is a canary that does not report `canary_version` when one is given (it is not running the
   release under judgement). A restart judges a canary against agents of its own version.

At the end of the window: fewer than `min_calls` (10) canary calls is `inconclusive`, else
`pass`. A canary that got too few calls is watched on, up to `max_window` (default: the
window) in all, until it has them; thin traffic then costs time, not a verdict. The
inconclusive policy (`pass` by default, or `fail`) turns the verdict into the outcome; the
document says so (`decided_by_policy`).

Baselines: given as URLs. With `baseline_version`, an agent reporting another version is
skipped; without it, one reporting the canary's version is skipped (it is not the old
release). A baseline unreachable at the start is skipped; one that stops answering later
keeps the figures it had (its missed polls are gaps).
"""

from __future__ import annotations

import http.client
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from prometheus_client.parser import text_string_to_metric_families

from mcp_mesh_sdk.agent.monitoring import THRESHOLDS as SEED
from mcp_mesh_sdk.agent.paths import Outcome
from mcp_mesh_sdk.errors import OpsError
from mcp_mesh_sdk.serving.tls import TlsError, client_context

OPERATIONS = "mcp_mesh_agent_operations_total"
DURATION = "mcp_mesh_agent_operation_duration_seconds"
INFO = "mcp_mesh_agent_info"
START_TIME = "mcp_mesh_agent_start_time_seconds"
OUTCOMES: tuple[str, ...] = tuple(outcome.value for outcome in Outcome)
QUANTILE = 0.95
FETCH_TIMEOUT = 2.0  # seconds per /metrics request
MAX_BODY = 8 * 1024 * 1024

Verdict = Literal["pass", "fail", "inconclusive"]
Policy = Literal["pass", "fail"]
Fetch = Callable[[str, float], str]


class ScrapeError(Exception):
    """An agent's /metrics could not be fetched or is not an MCP Mesh agent's."""


# ---------------------------------------------------------------- snapshots and windows


@dataclass(frozen=True)
class Snapshot:
    """One scrape of one agent: cumulative counters as the agent exposes them."""

    ok: float = 0.0
    client_errors: float = 0.0
    server_errors: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), sorted
    duration_sum: float = 0.0
    duration_count: float = 0.0
    version: str | None = None
    agent_name: str | None = None
    started: float | None = None  # the agent's start time, to see a restart


@dataclass(frozen=True)
class Window:
    """What happened over a window: counter increases and bucket increases."""

    ok: float = 0.0
    client_errors: float = 0.0
    server_errors: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()
    duration_sum: float = 0.0
    duration_count: float = 0.0
    restarts: int = 0

    @property
    def calls(self) -> float:
        return self.ok + self.client_errors + self.server_errors

    @property
    def server_error_ratio(self) -> float | None:
        return self.server_errors / self.calls if self.calls > 0 else None

    @property
    def timed_calls(self) -> float:
        """Calls with a duration in the histogram (the latency checks' sample size)."""
        return self.buckets[-1][1] if self.buckets else 0.0

    @property
    def p95_ms(self) -> float | None:
        value = histogram_quantile(QUANTILE, self.buckets)
        return None if value is None else value * 1000

    @property
    def avg_ms(self) -> float | None:
        if self.duration_count <= 0:
            return None
        return self.duration_sum / self.duration_count * 1000

    def __add__(self, other: Window) -> Window:
        return Window(
            ok=self.ok + other.ok,
            client_errors=self.client_errors + other.client_errors,
            server_errors=self.server_errors + other.server_errors,
            buckets=_merge_buckets(self.buckets, other.buckets, lambda a, b: a + b),
            duration_sum=self.duration_sum + other.duration_sum,
            duration_count=self.duration_count + other.duration_count,
            restarts=self.restarts + other.restarts,
        )

    def figures(self) -> dict[str, Any]:
        """The JSON figures: calls, ok, client_errors, server_errors, ratio, p95_ms, avg_ms."""
        ratio = self.server_error_ratio
        return {
            "calls": _count(self.calls),
            "ok": _count(self.ok),
            "client_errors": _count(self.client_errors),
            "server_errors": _count(self.server_errors),
            "server_error_ratio": None if ratio is None else round(ratio, 4),
            "p95_ms": _ms(self.p95_ms),
            "avg_ms": _ms(self.avg_ms),
            "restarts": self.restarts,
        }


def _count(value: float) -> int:
    return round(value)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _merge_buckets(
    left: tuple[tuple[float, float], ...],
    right: tuple[tuple[float, float], ...],
    combine: Callable[[float, float], float],
) -> tuple[tuple[float, float], ...]:
    """Combine two bucket lists on the bounds both have (an empty list is neutral)."""
    if not left:
        return tuple((le, combine(0.0, n)) for le, n in right)
    if not right:
        return tuple((le, combine(n, 0.0)) for le, n in left)
    theirs = dict(right)
    return tuple((le, combine(n, theirs[le])) for le, n in left if le in theirs)


def window_of(snapshot: Snapshot, *, restarts: int = 0) -> Window:
    """Everything a snapshot counts, as a window (what an agent counted since it started)."""
    return Window(
        ok=snapshot.ok,
        client_errors=snapshot.client_errors,
        server_errors=snapshot.server_errors,
        buckets=snapshot.buckets,
        duration_sum=snapshot.duration_sum,
        duration_count=snapshot.duration_count,
        restarts=restarts,
    )


def restarted(before: Snapshot, after: Snapshot) -> bool:
    """The agent restarted between two scrapes: another start time or a counter went down."""
    if before.started is not None and after.started is not None:  # noqa: SIM102
        if abs(after.started - before.started) > 1e-3:
            return True
    pairs = [
        (before.ok, after.ok),
        (before.client_errors, after.client_errors),
        (before.server_errors, after.server_errors),
        (before.duration_count, after.duration_count),
        (before.duration_sum, after.duration_sum),
    ]
    later = dict(after.buckets)
    pairs += [(n, later[le]) for le, n in before.buckets if le in later]
    return any(now < then for then, now in pairs)


def delta(before: Snapshot, after: Snapshot) -> Window:
    """The increase between two scrapes of one agent; after a restart, all it counted since."""
    if restarted(before, after):
        return window_of(after, restarts=1)
    return Window(
        ok=after.ok - before.ok,
        client_errors=after.client_errors - before.client_errors,
        server_errors=after.server_errors - before.server_errors,
        buckets=_merge_buckets(after.buckets, before.buckets, lambda a, b: a - b),
        duration_sum=after.duration_sum - before.duration_sum,
        duration_count=after.duration_count - before.duration_count,
    )


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets.

    None when there is nothing to interpolate (no observation, no +Inf bucket, or fewer than
    two buckets). A rank in the +Inf bucket answers the highest finite bound, as Prometheus does.
    """
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    counts: list[float] = []
    for _, count in ordered:  # cumulative counts never go down (as Prometheus ensures)
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = next((i for i, count in enumerate(counts[:-1]) if count >= rank), len(counts) - 1)
    if index == len(counts) - 1:
        return ordered[-2][0]
    upper = ordered[index][0]
    if index == 0 and upper <= 0:
        return upper
    lower, below = (ordered[index - 1][0], counts[index - 1]) if index > 0 else (0.0, 0.0)
    in_bucket = counts[index] - below
    return lower + (upper - lower) * ((rank - below) / in_bucket)


# ----------------------------------------------------------------------------- scraping


def parse_metrics(text: str) -> Snapshot:
    """One agent's exposition text as a snapshot (summed over the operations)."""
    outcomes = dict.fromkeys(OUTCOMES, 0.0)
    buckets: dict[float, float] = {}
    duration_sum = duration_count = 0.0
    version: str | None = None
    agent_name: str | None = None
    started: float | None = None
    seen_info = False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, float(sample.value)
                if name == OPERATIONS:
                    outcome = labels.get("outcome")
                    if outcome in outcomes:
                        outcomes[outcome] += value
                elif name == f"{DURATION}_bucket":
                    bound = float(labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + value
                elif name == f"{DURATION}_sum":
                    duration_sum += value
                elif name == f"{DURATION}_count":
                    duration_count += value
                elif name == INFO and value == 1:
                    seen_info = True
                    version = labels.get("version", version)
                    agent_name = labels.get("agent_name", agent_name)
                elif name == START_TIME:
                    started = value
    except (ValueError, KeyError, IndexError) as exc:
        raise ScrapeError(f"unreadable Prometheus exposition: {exc}") from exc
    if not seen_info:
        raise ScrapeError(f"not an MCP Mesh agent's metrics (no {INFO} series)")
    return Snapshot(
        ok=outcomes["ok"],
        client_errors=outcomes["client_error"],
        server_errors=outcomes["server_error"],
        buckets=tuple(sorted(buckets.items())),
        duration_sum=duration_sum,
        duration_count=duration_count,
        version=version,
        agent_name=agent_name,
        started=started,
    )


def metrics_url(url: str) -> str:
    """`http://host:port` -> `http://host:port/metrics`; a URL with a path is kept as given.

    Raises ValueError when it is not an http(s) URL with a host.
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    try:
        parts.port  # noqa: B018  # raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urllib.parse.urlunsplit(parts)


def fetch_metrics(url: str, timeout: float, ca_file: Path | None = None) -> str:
    """GET an agent's /metrics (plain text, no authentication); ScrapeError when it fails.
    An https:// agent is verified against `ca_file` (the system's CAs when None)."""
    if not url.startswith(("http://", "https://")):
        raise ScrapeError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})  # noqa: S310
    try:
        context = client_context(url, ca_file)
    except TlsError as exc:
        raise ScrapeError(str(exc)) from exc
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            body = response.read(MAX_BODY + 1)
            if response.length:  # bytes the Content-Length promised that never came
                raise http.client.IncompleteRead(body, response.length)
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"{url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)  # HTTPException: the answer broke off midway
        raise ScrapeError(f"{url} did not answer: {reason!s} ({type(exc).__name__})") from exc
    if len(body) > MAX_BODY:
        raise ScrapeError(f"{url} answered more than {MAX_BODY} bytes")
    return bytes(body).decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------ verdict


@dataclass(frozen=True)
class Thresholds:
    error_rate: float = SEED["error_rate"]  # the seed's PerformanceAlerting thresholds
    p95_ms: float = SEED["p95_response_time_ms"]
    avg_ms: float = SEED["avg_response_time_ms"]
    min_errors: int = 5
    min_calls_latency: int = 5
    min_calls: int = 10
    baseline_min_calls: int = 5
    baseline_factor: float = 2.0
    latency_factor: float = 2.0
    latency_margin_ms: float = 100.0


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    metric: str | None
    message: str


def _calls(n: float) -> str:
    return f"{_count(n)} call" + ("" if _count(n) == 1 else "s")


def _comparable(baseline: Window | None, size: float, t: Thresholds) -> Window | None:
    """The baseline when it saw enough calls to compare with, else None."""
    return baseline if baseline is not None and size >= t.baseline_min_calls else None


def _no_baseline(baseline: Window | None, size: float) -> str:
    if baseline is None:
        return "no baseline"
    return f"too little baseline traffic to compare ({_calls(size)})"


def check_errors(canary: Window, baseline: Window | None, t: Thresholds) -> Judgement | None:
    """Rule 1: enough server errors, above the threshold, and worse than the baseline."""
    ratio = canary.server_error_ratio
    if ratio is None or canary.server_errors < t.min_errors or ratio <= t.error_rate:
        return None
    limit = f"threshold {t.error_rate:.1%}"
    size = baseline.calls if baseline is not None else 0.0
    compared = _comparable(baseline, size, t)
    if compared is None:
        against = _no_baseline(baseline, size)
    else:
        base_ratio = compared.server_error_ratio or 0.0
        if ratio <= base_ratio * t.baseline_factor:
            return None
        against = (
            f"{base_ratio:.1%} on the baseline ({_count(compared.server_errors)} of "
            f"{_calls(compared.calls)})"
        )
        limit += f" and {t.baseline_factor:g}x the baseline's"
    message = (
        f"server-error ratio {ratio:.1%} on the canary ({_count(canary.server_errors)} of "
        f"{_calls(canary.calls)}) against {against}; {limit}"
    )
    return Judgement("fail", "server_error_ratio", message)


def check_latency(canary: Window, baseline: Window | None, t: Thresholds) -> Judgement | None:
    """Rule 2: enough timed calls, and p95 or avg above the seed's thresholds or the baseline's."""
    p95, avg = canary.p95_ms, canary.avg_ms
    if canary.timed_calls < t.min_calls_latency or p95 is None:
        return None
    size = baseline.timed_calls if baseline is not None else 0.0
    compared = _comparable(baseline, size, t)
    base_p95 = compared.p95_ms if compared is not None else None
    base_avg = compared.avg_ms if compared is not None else None
    here = f"on the canary ({_calls(canary.timed_calls)})"
    if p95 > t.p95_ms:
        there = _no_baseline(baseline, size) if base_p95 is None else f"{base_p95:.1f} ms"
        if base_p95 is not None:
            there += f" on the baseline ({_calls(size)})"
        message = f"p95 latency {p95:.1f} ms {here} against {there}; threshold {t.p95_ms:g} ms"
        return Judgement("fail", "p95_latency", message)
    if avg is not None and avg > t.avg_ms:
        there = _no_baseline(baseline, size) if base_avg is None else f"{base_avg:.1f} ms"
        if base_avg is not None:
            there += f" on the baseline ({_calls(size)})"
        message = f"average latency {avg:.1f} ms {here} against {there}; threshold {t.avg_ms:g} ms"
        return Judgement("fail", "avg_latency", message)
    if base_p95 is None:
        return None
    if p95 > base_p95 * t.latency_factor and p95 - base_p95 > t.latency_margin_ms:
        message = (
            f"p95 latency {p95:.1f} ms {here} against {base_p95:.1f} ms on the baseline "
            f"({_calls(size)}); limit {t.latency_factor:g}x the baseline's and more than "
            f"{t.latency_margin_ms:g} ms above it"
        )
        return Judgement("fail", "p95_latency", message)
    return None


def check(canary: Window, baseline: Window | None, thresholds: Thresholds) -> Judgement | None:
    """The first failing check on the window so far (errors, then latency), or None."""
    return check_errors(canary, baseline, thresholds) or check_latency(canary, baseline, thresholds)


def _summary(window: Window) -> str:
    ratio = window.server_error_ratio
    parts = [_calls(window.calls), f"{(ratio or 0.0):.1%} server errors"]
    if window.p95_ms is not None:
        parts.append(f"p95 {window.p95_ms:.1f} ms")
    if window.avg_ms is not None:
        parts.append(f"avg {window.avg_ms:.1f} ms")
    return ", ".join(parts)


def verdict(
    canary: Window, baseline: Window | None, thresholds: Thresholds, *, seconds: float
) -> Judgement:
    """The verdict at the end of the window: fail, inconclusive (too few calls) or pass."""
    failed = check(canary, baseline, thresholds)
    if failed is not None:
        return failed
    if canary.calls < thresholds.min_calls:
        return Judgement(
            "inconclusive",
            None,
            f"only {_calls(canary.calls)} on the canary in {seconds:.1f} s, fewer than the "
            f"{thresholds.min_calls} needed to judge it",
        )
    against = "no baseline" if baseline is None else f"the baseline: {_summary(baseline)}"
    return Judgement("pass", None, f"canary: {_summary(canary)}; against {against}")


def outcome(judgement: Judgement, policy: Policy) -> Policy:
    if judgement.verdict == "inconclusive":
        return policy
    return "fail" if judgement.verdict == "fail" else "pass"


# ----------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class Settings:
    canary: str
    baselines: tuple[str, ...] = ()
    baseline_version: str | None = None
    canary_version: str | None = None  # the release the canary must run
    window: float = 10.0
    interval: float = 1.0
    max_window: float | None = None  # watch on until min_calls, this long in all (None: window)
    thresholds: Thresholds = field(default_factory=Thresholds)
    inconclusive: Policy = "pass"
    timeout: float = FETCH_TIMEOUT
    ca_file: Path | None = None  # https:// agents are verified against it (system CAs: None)


@dataclass
class _Agent:
    url: str
    last: Snapshot | None = None
    window: Window = field(default_factory=Window)
    misses: int = 0

    def observe(self, snapshot: Snapshot) -> None:
        if self.last is not None:
            self.window = self.window + delta(self.last, snapshot)
        self.last = snapshot

    @property
    def version(self) -> str | None:
        return self.last.version if self.last else None


def _scrape_all(urls: Sequence[str], fetch: Fetch, timeout: float) -> list[Snapshot | ScrapeError]:
    def one(url: str) -> Snapshot | ScrapeError:
        try:
            return parse_metrics(fetch(url, timeout))
        except ScrapeError as exc:
            return exc

    if len(urls) <= 1:
        return [one(url) for url in urls]
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        return list(pool.map(one, urls))


def _sum(windows: Iterable[Window]) -> Window:
    total = Window()
    for window in windows:
        total = total + window
    return total


def analyse(
    settings: Settings,
    *,
    fetch: Fetch | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Watch the canary for the window and return the result document (see the docstring)."""
    get = fetch or fetch_metrics
    if fetch is None and settings.ca_file is not None:
        get = partial(fetch_metrics, ca_file=settings.ca_file)
    canary = _Agent(settings.canary)
    baselines = [_Agent(url) for url in settings.baselines]
    skipped: list[dict[str, str]] = []
    started_at, t0 = wall(), clock()

    wanted = settings.baseline_version
    first = _scrape_all([canary.url, *settings.baselines], get, settings.timeout)
    head = first[0]
    if isinstance(head, ScrapeError):
        head = _scrape_all([canary.url], get, settings.timeout)[0]
    if isinstance(head, ScrapeError):
        raise OpsError(f"the canary's metrics cannot be read: {head}")
    expected = settings.canary_version
    if expected is not None and head.version != expected:
        raise OpsError(
            f"the canary {canary.url} runs {head.version}, not {expected}: "
            "it is not running the release under judgement"
        )
    canary.observe(head)
    for agent, answer in zip(baselines, first[1:], strict=True):
        if isinstance(answer, ScrapeError):
            skipped.append({"url": agent.url, "reason": f"unreachable: {answer}"})
            continue
        agent.observe(answer)
    live = [agent for agent in baselines if agent.last is not None]
    for agent in list(live):
        reason = _version_mismatch(agent.version, wanted, canary.version)
        if reason:
            skipped.append({"url": agent.url, "reason": reason})
            live.remove(agent)

    judgement: Judgement | None = None
    elapsed = 0.0
    tick = 0
    limit = max(settings.window, settings.max_window or 0.0)
    while judgement is None:
        tick = max(tick + 1, math.floor((clock() - t0) / settings.interval) + 1)
        target = min(tick * settings.interval, limit)
        pause = t0 + target - clock()
        if pause > 0:
            sleep(pause)
        scraped = _scrape_all([canary.url] + [a.url for a in live], get, settings.timeout)
        if isinstance(scraped[0], ScrapeError):
            scraped[0] = _scrape_all([canary.url], get, settings.timeout)[0]
        elapsed = clock() - t0
        for agent, snap in zip(list(live), scraped[1:], strict=True):
            if isinstance(snap, ScrapeError):
                agent.misses += 1
                continue
            reason = _version_mismatch(snap.version, wanted, canary.version)
            if reason:
                skipped.append({"url": agent.url, "reason": f"{reason} during the window"})
                live.remove(agent)
                continue
            agent.observe(snap)
        baseline = _sum(a.window for a in live) if live else None
        answer = scraped[0]
        if isinstance(answer, ScrapeError):
            judgement = Judgement(
                "fail",
                "availability",
                f"the canary stopped answering its metrics after {elapsed:.1f} s ({answer}); "
                f"it had served {_calls(canary.window.calls)} by then",
            )
            break
        canary.observe(answer)
        judgement = check(canary.window, baseline, settings.thresholds)
        enough = canary.window.calls >= settings.thresholds.min_calls
        over = elapsed >= settings.window - 1e-9 and (enough or elapsed >= limit - 1e-9)
        if judgement is None and over:
            judgement = verdict(canary.window, baseline, settings.thresholds, seconds=elapsed)
    early = elapsed < settings.window - 1e-9

    baseline = _sum(a.window for a in live) if live else None
    result = outcome(judgement, settings.inconclusive)
    by_policy = judgement.verdict == "inconclusive"
    message = judgement.message
    if by_policy:
        message += f"; {'passed' if result == 'pass' else 'failed'} by the inconclusive policy"
    return {
        "verdict": judgement.verdict,
        "outcome": result,
        "decided_by_policy": by_policy,
        "metric": judgement.metric,
        "message": message,
        "early_abort": early,
        "seconds": round(elapsed, 3),
        "started_at": round(started_at, 3),
        "finished_at": round(wall(), 3),
        "window_seconds": settings.window,
        "max_window_seconds": limit,
        "interval_seconds": settings.interval,
        "canary": {"url": canary.url, "version": canary.version, **canary.window.figures()},
        "baseline": None
        if baseline is None
        else {
            "urls": [a.url for a in live],
            "versions": [a.version for a in live],
            **baseline.figures(),
            "missed_polls": sum(a.misses for a in live),
        },
        "skipped_baselines": skipped,
        "thresholds": asdict(settings.thresholds),
        "inconclusive_policy": settings.inconclusive,
    }


def _version_mismatch(version: str | None, wanted: str | None, canary: str | None) -> str:
    """Why an agent cannot be a baseline ('' when it can)."""
    if wanted is not None and version != wanted:
        return f"runs version {version}, not the baseline version {wanted}"
    if wanted is None and version is not None and version == canary:
        return f"runs the canary's version {version}"
    return ""
