"""A bounded load generator: GET requests through the lab's load balancer from a few threads.

Hard limits on time and on the number of requests; it only ever talks to the one URL it is
given (the lab LB). Each request is recorded with its start time, so a run can be plotted.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic()
    seconds: float
    ok: bool
    detail: str  # HTTP status or the error


@dataclass
class LoadGenerator:
    url: str
    rate: float = 25.0  # requests per second, all threads together
    threads: int = 4
    max_seconds: float = 300.0
    max_requests: int = 10_000
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0

    def __enter__(self) -> LoadGenerator:
        self.started = time.monotonic()
        for index in range(self.threads):
            worker = threading.Thread(target=self._work, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)
        self.stopped = time.monotonic()

    def _work(self, index: int) -> None:
        interval = self.threads / self.rate
        next_at = self.started + index * interval / self.threads
        deadline = self.started + self.max_seconds
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            with self._lock:
                if len(self.samples) >= self.max_requests:
                    return
            if now < next_at:
                self._stop.wait(next_at - now)
                continue
            next_at += interval
            self._record(self._one())

    def _one(self) -> Sample:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(self.url, timeout=10) as response:
                response.read()
                status = response.status
            return Sample(started, time.monotonic() - started, status == 200, str(status))
        except urllib.error.HTTPError as exc:
            return Sample(started, time.monotonic() - started, False, f"HTTP {exc.code}")
        except (OSError, urllib.error.URLError) as exc:
            return Sample(started, time.monotonic() - started, False, repr(exc))

    def _record(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    @property
    def failures(self) -> list[Sample]:
        return [sample for sample in self.samples if not sample.ok]

    @property
    def rate_achieved(self) -> float:
        seconds = (self.stopped or time.monotonic()) - self.started
        return len(self.samples) / seconds if seconds > 0 else 0.0
