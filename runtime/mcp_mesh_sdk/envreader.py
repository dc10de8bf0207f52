"""Typed reading of one environment, every problem collected instead of stopping at the first.

`EnvReader` holds the rules (integers, booleans, paths, URLs, host names, secrets inline or
read from a file) so that the agent's and the registry's settings validate the same way.
Secrets come back wrapped in `Secret`, whose repr and str never show the value.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcp_mesh_sdk.errors import ConfigError, ConfigProblem

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_LABEL_PATTERN = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_EXTENSION_PATTERN = re.compile(r"^(\.[a-z0-9_+-]+)+$")
_TOKEN_PATTERN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what an HTTP header can carry
SHORT_TOKEN = 16


class Secret:
    """A secret string: never shown by repr/str/format, compared in constant time."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it (a header, a comparison)."""
        return self._value

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison with what a caller presented (digests hide the length)."""
        mine = hashlib.sha256(self._value.encode()).digest()
        theirs = hashlib.sha256(candidate.encode()).digest()
        return hmac.compare_digest(mine, theirs)

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __format__(self, spec: str) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self.matches(other._value)

    def __hash__(self) -> int:
        return hash(Secret)

    def __reduce__(self) -> Any:
        raise TypeError("secrets are not pickled")


_ANY_PROXY = (
    "any client could then name any address in X-Forwarded-For (and have it blocked); "
    "list the load balancers' addresses or networks"
)


def is_host_name_or_address(value: str) -> bool:
    """An IP address (v4 or v6) or an RFC 1123 host name."""
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        pass
    else:
        return True
    name = value.removesuffix(".")
    if not name or len(name) > 253:
        return False
    return all(_LABEL_PATTERN.match(label) for label in name.split("."))


class EnvReader:
    """Reads variables from one environment, collecting every problem instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []
        self.known: set[str] = set()

    # -- plumbing ----------------------------------------------------------------------------
    def raw(self, name: str) -> str | None:
        """The stripped value, or None when unset or empty (systemd's `NAME=` means unset)."""
        self.known.add(name)
        value = self.env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def problem(self, name: str, reason: str) -> None:
        self.problems.append(ConfigProblem(name, reason))

    def warn(self, name: str, reason: str) -> None:
        self.warnings.append(f"{name}: {reason}")

    def unknown_variables(self, prefixes: Iterable[str]) -> None:
        """Warn about every variable with one of `prefixes` that no reader asked for."""
        prefixes = tuple(prefixes)
        for name in sorted(self.env):
            if name.startswith(prefixes) and name not in self.known:
                close = difflib.get_close_matches(name, sorted(self.known), n=1, cutoff=0.75)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.warn(name, f"unknown variable, ignored{hint}")

    def finish(self) -> None:
        if self.problems:
            raise ConfigError(list(self.problems))

    # -- typed readers -----------------------------------------------------------------------
    def text(
        self, name: str, default: str, *, pattern: re.Pattern[str] | None = None, what: str = ""
    ) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if pattern is not None and not pattern.match(value):
            self.problem(name, f"{what or 'invalid value'}, got {value!r}")
            return default
        return value

    def integer(
        self,
        name: str,
        default: int,
        *,
        minimum: int = 0,
        maximum: int | None = None,
        unit: str = "",
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if maximum is not None:
            kind = f"an integer from {minimum} to {maximum}"
        suffix = f" ({unit})" if unit else ""
        try:
            number = int(value, 10)
        except ValueError:
            self.problem(name, f"must be {kind}{suffix}, got {value!r}")
            return default
        if number < minimum or (maximum is not None and number > maximum):
            self.problem(name, f"must be {kind}{suffix}, got {value!r}")
            return default
        return number

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float = 0.0,
        maximum: float | None = None,
        unit: str = "",
        allow_minimum: bool = True,
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        bound = f">= {minimum:g}" if allow_minimum else f"> {minimum:g}"
        kind = f"a number {bound}" + (f" and <= {maximum:g}" if maximum is not None else "")
        suffix = f" ({unit})" if unit else ""
        try:
            number = float(value)
        except ValueError:
            self.problem(name, f"must be {kind}{suffix}, got {value!r}")
            return default
        too_small = number < minimum or (not allow_minimum and number == minimum)
        if number != number or too_small or (maximum is not None and number > maximum):
            self.problem(name, f"must be {kind}{suffix}, got {value!r}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.problem(name, f"must be true or false (also 1/0, yes/no, on/off), got {value!r}")
        return default

    def choice(
        self, name: str, default: str, choices: Iterable[str], *, upper: bool = False
    ) -> str:
        options = tuple(choices)
        value = self.raw(name)
        if value is None:
            return default
        normal = value.upper() if upper else value.lower()
        if normal == "WARN" and upper:
            normal = "WARNING"
        if normal not in options:
            self.problem(name, f"must be one of {', '.join(options)}, got {value!r}")
            return default
        return normal

    def absolute_path(self, name: str, default: Path | None) -> Path | None:
        value = self.raw(name)
        if value is None:
            return default
        path = Path(value)
        if not path.is_absolute():
            self.problem(name, f"must be an absolute path, got {value!r}")
            return default
        return Path(os.path.normpath(path))

    def url(self, name: str, default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            self.problem(name, "is not a valid URL (check the port)")
            return default
        if parts.username is not None or parts.password is not None:
            self.problem(name, "must not carry credentials (use a token variable instead)")
            return default
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(name, f"must be an http:// or https:// URL with a host, got {value!r}")
            return default
        if port == 0:
            self.problem(name, f"port must be from 1 to 65535, got {value!r}")
            return default
        if parts.query or parts.fragment:
            self.problem(name, f"must not have a query or fragment, got {value!r}")
            return default
        return value.rstrip("/")

    def host(self, name: str, default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if not is_host_name_or_address(value):
            self.problem(name, f"must be a host name or an IP address, got {value!r}")
            return default
        return value.strip("[]")

    def host_list(self, name: str) -> tuple[str, ...]:
        """Comma-separated `host`, `host:port` or `host:*` entries (IPv6 as `[addr]:port`)."""
        value = self.raw(name)
        if value is None:
            return ()
        entries: list[str] = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            host, port = _split_host_port(item)
            port_ok = port is None or port == "*" or (port.isdigit() and 0 < int(port) < 65536)
            if not is_host_name_or_address(host) or not port_ok:
                self.problem(name, f"{item!r} is not a host name or address (optionally :port)")
                continue
            entries.append(item)
        return tuple(entries)

    def networks(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """Comma-separated IP addresses or CIDR networks of trusted proxies. `*` and /0 are
        refused: every client could then name any address in X-Forwarded-For."""
        value = self.raw(name)
        if value is None:
            return default
        entries: list[str] = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                if item == "*":
                    self.problem(name, f"'*' trusts every address: {_ANY_PROXY}")
                else:
                    self.problem(name, f"{item!r} is not an IP address or network")
                continue
            if network.prefixlen == 0:
                self.problem(name, f"{item!r} trusts every address: {_ANY_PROXY}")
                continue
            entries.append(item)
        return tuple(entries)

    def extensions(self, name: str, default: frozenset[str]) -> frozenset[str]:
        value = self.raw(name)
        if value is None:
            return default
        found: set[str] = set()
        for item in (part.strip().lower() for part in value.split(",")):
            if not item:
                continue
            if not item.startswith("."):
                self.problem(name, f"{item!r} must start with a dot (write '.{item}')")
            elif not _EXTENSION_PATTERN.match(item):
                self.problem(name, f"{item!r} is not a file extension like '.txt'")
            else:
                found.add(item)
        if not found and not any(p.variable == name for p in self.problems):
            self.problem(name, "lists no extension; give at least one, e.g. '.txt'")
        return frozenset(found) if found else default

    def secret(
        self, name: str, file_name: str | None = None, *, required: bool = False
    ) -> Secret | None:
        """A secret given inline (`name`) or in the file `file_name` names; never echoed."""
        inline = self.raw(name)
        path_value = self.raw(file_name) if file_name else None
        if inline is not None and path_value is not None:
            self.problem(name, f"set either {name} or {file_name}, not both")
            return None
        if file_name is not None and path_value is not None:
            inline = self._secret_file(file_name, path_value)
            if inline is None:
                return None
        if inline is None:
            if required:
                either = f" or {file_name}" if file_name else ""
                self.problem(name, f"not set; set {name}{either}")
            return None
        return Secret(inline)

    def _secret_file(self, file_name: str, path_value: str) -> str | None:
        """The stripped text of the file `file_name` names, or None after naming the problem."""
        path = Path(path_value)
        if not path.is_absolute():
            self.problem(file_name, f"must be an absolute path, got {path_value!r}")
            return None
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self.problem(file_name, f"cannot read {path_value}: {reason}")
            return None
        except UnicodeDecodeError:
            self.problem(file_name, f"{path_value} is not UTF-8 text")
            return None
        if not text:
            self.problem(file_name, f"{path_value} is empty")
            return None
        return text

    def header_token(self, name: str, file_name: str, *, required: bool) -> Secret | None:
        """A bearer token: a secret that must fit in an HTTP header."""
        secret = self.secret(name, file_name, required=required)
        if secret is None:
            return None
        source = file_name if self.raw(file_name) is not None else name
        if not _TOKEN_PATTERN.match(secret.reveal()):
            self.problem(source, "holds spaces or characters an HTTP header cannot carry")
            return None
        if len(secret.reveal()) < SHORT_TOKEN:
            self.warn(
                source, f"token is shorter than {SHORT_TOKEN} characters; use a long random one"
            )
        return secret


def _split_host_port(item: str) -> tuple[str, str | None]:
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if item.count(":") == 1:
        host, _, port = item.partition(":")
        return host, port
    return item, None
