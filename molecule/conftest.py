"""Shared by the role scenarios' testinfra tests (molecule/<role>/tests/, the `verify` step).

molecule runs them with `--connection=ansible --ansible-inventory=<the lab's inventory>
--hosts=<the scenario's host>`, so `host` is the one lab host the scenario converged. The lab's
inventory also carries what a client of the mesh holds: the CA the services' certificates chain
to and the tokens. The HTTP checks run from this machine, as a client would.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from testinfra.utils.ansible_runner import AnsibleRunner


@pytest.fixture(scope="module")
def lab_vars(host: Any) -> dict[str, Any]:
    """The scenario host's inventory variables (lab address, TLS material, tokens)."""
    variables: dict[str, Any] = host.ansible.get_variables()
    return variables


@pytest.fixture(scope="module")
def other_host_vars(request: pytest.FixtureRequest) -> Callable[[str], dict[str, Any]]:
    """Another lab host's inventory variables, by name (e.g. the database's clients)."""
    runner = AnsibleRunner(request.config.option.ansible_inventory)
    return runner.get_variables


@pytest.fixture(scope="module")
def tls_context(lab_vars: dict[str, Any]) -> ssl.SSLContext:
    """Verifies the lab's CA and the host name, as the mesh's clients do."""
    return ssl.create_default_context(cadata=str(lab_vars["mesh_common_tls_ca_cert"]))


def assert_runs_and_listens(host: Any, unit: str, listener: str) -> None:
    """The unit is running and enabled at boot, and something listens on `listener`
    (testinfra's socket spec, e.g. tcp://0.0.0.0:8080)."""
    service = host.service(unit)
    assert service.is_running, f"{unit} is not running"
    assert service.is_enabled, f"{unit} is not enabled"
    assert host.socket(listener).is_listening, f"nothing listens on {listener}"


def https_call(
    context: ssl.SSLContext, url: str, token: str | None = None, method: str = "GET"
) -> tuple[int, Any]:
    """One HTTPS request -> (status, JSON body or None); an HTTP error status is returned."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
