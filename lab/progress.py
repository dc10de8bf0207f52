"""One progress line for long steps: rewritten in place on a TTY, plain lines otherwise."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import TextIO


class Progress:
    """Shows `[ 12s] label: stage`; on a TTY a ticker keeps the seconds moving."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.stage = "starting"
        self.detail = ""
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.tty:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
        self._show()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, stage: str, detail: str = "") -> None:
        """Plain output gets a line per new stage; a TTY also shows the changing detail."""
        with self._lock:
            changed = stage != self.stage
            self.stage, self.detail = stage, detail
        if changed or self.tty:
            self._show()

    def _tick(self) -> None:
        while not self._done.wait(1.0):
            self._show()

    def _show(self) -> None:
        with self._lock:
            line = f"[{self.elapsed():4.0f}s] {self.label}: {self.stage}"
            if self.tty and self.detail:
                line += f" ({self.detail})"
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + line[:width].ljust(width))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
