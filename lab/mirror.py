"""Find the Debian mirror the machine's own apt sources already use.

The repo never names a mirror host: debootstrap gets whatever `URIs:` (deb822 `.sources`)
or `deb URI SUITE ...` (one-line `.list`) entry serves the wanted suite's `main` component.
A machine's sources name its own release only (a bookworm machine lists no trixie), so for
another Debian release the mirror serving any Debian release is taken when it publishes the
wanted suite (`dists/SUITE/Release` answers).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

APT_DIR = Path("/etc/apt")
# Debian release code names a machine's sources may name; the mirror serving one of them is a
# Debian archive that may serve the others too.
DEBIAN_SUITES = ("bullseye", "bookworm", "trixie", "forky", "sid")


@dataclass(frozen=True)
class AptSource:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    enabled: bool = True


def parse_deb822(text: str) -> list[AptSource]:
    """Parse a deb822 `.sources` file: paragraphs of `Field: value` split by blank lines."""
    sources = []
    for paragraph in _paragraphs(text):
        fields: dict[str, str] = {}
        last = None
        for line in paragraph:
            if line[0] in " \t" and last is not None:
                fields[last] += " " + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            last = key.strip().lower()
            fields[last] = value.strip()
        if "uris" not in fields:
            continue
        sources.append(
            AptSource(
                types=tuple(fields.get("types", "").split()),
                uris=tuple(fields["uris"].split()),
                suites=tuple(fields.get("suites", "").split()),
                components=tuple(fields.get("components", "").split()),
                enabled=fields.get("enabled", "yes").lower() not in {"no", "false", "0"},
            )
        )
    return sources


def _paragraphs(text: str) -> Iterable[list[str]]:
    paragraph: list[str] = []
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if not raw.strip():
            if paragraph:
                yield paragraph
            paragraph = []
            continue
        paragraph.append(raw.rstrip())
    if paragraph:
        yield paragraph


def parse_one_line(text: str) -> list[AptSource]:
    """Parse a one-line `sources.list`: `deb [options] URI SUITE COMPONENT...`."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            closing = rest.find("]")
            if closing < 0:
                continue
            rest = rest[closing + 1 :]
        words = rest.split()
        if len(words) < 2:
            continue
        sources.append(AptSource((kind,), (words[0],), (words[1],), tuple(words[2:])))
    return sources


def pick_mirror(sources: Iterable[AptSource], suite: str) -> str | None:
    """The first enabled binary source serving `suite` with the `main` component."""
    for source in sources:
        if not source.enabled or "deb" not in source.types or suite not in source.suites:
            continue
        if "main" not in source.components:
            continue
        for uri in source.uris:
            if uri.split(":", 1)[0] in {"http", "https", "file"}:
                return uri.rstrip("/")
    return None


def read_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every source the machine's apt would use, in apt's own reading order."""
    sources: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    for path in sorted(parts.glob("*")) if parts.is_dir() else []:
        if path.suffix == ".list":
            sources += parse_one_line(path.read_text(errors="replace"))
        elif path.suffix == ".sources":
            sources += parse_deb822(path.read_text(errors="replace"))
    return sources


def release_url(mirror: str, suite: str) -> str:
    return f"{mirror}/dists/{suite}/Release"


def publishes(url: str, timeout: float = 10.0) -> bool:
    """Whether `url` answers (a HEAD request; file: URLs are checked on disk)."""
    if url.startswith("file:"):
        return Path(url.removeprefix("file:").removeprefix("//")).is_file()
    request = urllib.request.Request(url, method="HEAD")  # noqa: S310 (http(s) of apt sources)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def find_mirror(
    suite: str, apt_dir: Path = APT_DIR, check: Callable[[str], bool] = publishes
) -> str:
    """The mirror for `suite`: one the sources name for it, else a Debian mirror publishing it."""
    sources = read_sources(apt_dir)
    mirror = pick_mirror(sources, suite)
    if mirror is not None:
        return mirror
    tried = []
    for other in DEBIAN_SUITES:
        candidate = pick_mirror(sources, other)
        if candidate is None or candidate in tried:
            continue
        tried.append(candidate)
        if check(release_url(candidate, suite)):
            return candidate
    published = f", and no Debian mirror they name ({', '.join(tried)}) publishes it"
    raise LabError(
        f"no apt source in {apt_dir}/sources.list or {apt_dir}/sources.list.d serves "
        f"'{suite} main'{published if tried else ''}; "
        f"add one (deb822 'URIs:' or a 'deb URI {suite} main' line)"
    )
