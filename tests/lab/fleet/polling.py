"""Waiting in the lab tests: a check polled until it holds, or the test fails naming what."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float, step: float = 1.0) -> T:
    """The first truthy answer of `check`, asked every `step` seconds; a failure naming `what`
    when none came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s", pytrace=False)
        time.sleep(step)
