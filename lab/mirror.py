"""Find the Debian mirror the machine's own apt sources already use.

The repo never names a mirror host: debootstrap gets whatever `URIs:` (deb822 `.sources`)
or `deb URI SUITE ...` (one-line `.list`) entry serves the wanted suite's `main` component.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

APT_DIR = Path("/etc/apt")


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


def find_mirror(suite: str, apt_dir: Path = APT_DIR) -> str:
    mirror = pick_mirror(read_sources(apt_dir), suite)
    if mirror is None:
        raise LabError(
            f"no apt source in {apt_dir}/sources.list or {apt_dir}/sources.list.d serves "
            f"'{suite} main'; add one (deb822 'URIs:' or a 'deb URI {suite} main' line)"
        )
    return mirror
