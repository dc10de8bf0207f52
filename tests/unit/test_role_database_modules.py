"""The mesh_database role's modules: the .deb closure and its index on the controller, the
SCRAM verifier and the role/database plan, the dump's verdicts and choice, the sealed copies."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pyrage
import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "plugins" / "modules"


def _load(name: str, library: Path = LIBRARY) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, library / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


debs = _load("mesh_debs")  # shared with mesh_monitoring
account = _load("mesh_database_account")
dump = _load("mesh_database_dump")
age = _load("mesh_database_age")

SIMULATION = """\
NOTE: This is only a simulation!
Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])
Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u2 Debian:12.15/oldstable [all])
Inst postgresql-15 (15.20-0+deb12u1 Debian-Security:12/oldstable-security [amd64])
Inst libfoo (1:2.0-1 Debian:12.15/oldstable [amd64])
Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])
"""


def test_the_closure_is_read_from_apt_simulation_with_epochs_in_file_names() -> None:
    found = debs.parse_simulation(SIMULATION)
    assert [d.name for d in found] == ["gcc-12-base", "libc6", "tzdata", "postgresql-15", "libfoo"]
    assert found[2].version == "2025b-0+deb12u2" and found[2].arch == "all"
    assert found[4].filename == "libfoo_1%3a2.0-1_amd64.deb"


def test_the_plan_downloads_what_is_missing_and_removes_what_the_closure_dropped() -> None:
    wanted = debs.parse_simulation(SIMULATION)
    present = ["libc6_2.36-9+deb12u14_amd64.deb", "postgresql-15_15.18-0+deb12u1_amd64.deb"]
    missing, stale = debs.plan(present, wanted)
    assert "libc6" not in {d.name for d in missing}
    assert {d.name for d in missing} == {"gcc-12-base", "tzdata", "postgresql-15", "libfoo"}
    assert stale == ["postgresql-15_15.18-0+deb12u1_amd64.deb"]
    assert debs.plan([d.filename for d in wanted], wanted) == ([], [])


def test_unknown_packages_are_named_from_apts_errors() -> None:
    text = (
        "E: Unable to locate package postgresql-15\nE: Package 'foo' has no installation candidate"
    )
    assert debs.lacking(text) == ["foo", "postgresql-15"]


class FakeApt:
    """apt-get and dpkg-scanpackages as the module calls them, on a small fake archive."""

    def __init__(self, closure: str, known: bool = True) -> None:
        self.closure, self.known, self.calls = closure, known, []

    def __call__(self, argv: list[str], cwd: Path | None) -> tuple[int, str, str]:
        self.calls.append(argv)
        if argv[:2] == ["dpkg", "--print-architecture"]:
            return 0, "amd64\n", ""
        if argv[:2] == ["apt-get", "-s"]:
            if not self.known:
                return 100, "", "E: Unable to locate package postgresql-15\n"
            return 0, self.closure, ""
        if argv[:2] == ["apt-get", "update"]:
            self.known = True
            return 0, "", ""
        if argv[:2] == ["apt-get", "download"]:
            assert cwd is not None
            for spec in argv[2:]:
                deb = next(
                    d for d in debs.parse_simulation(self.closure) if d.name == spec.split("=")[0]
                )
                (cwd / deb.filename).write_bytes(spec.encode())
            return 0, "", ""
        if argv[0] == "dpkg-scanpackages":
            assert cwd is not None
            lines = [
                f"Package: {p.name.split('_')[0]}\nFilename: ./{p.name}\n"
                for p in sorted(cwd.glob("*.deb"))
            ]
            return 0, "\n".join(lines), ""
        raise AssertionError(argv)


@pytest.fixture
def release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debs, "controller_release", lambda run: "bookworm amd64")


def test_a_complete_directory_changes_nothing_and_downloads_nothing(
    tmp_path: Path, release: None
) -> None:
    apt = FakeApt(SIMULATION)
    first = debs.prepare(
        apt, tmp_path / "d", tmp_path / "d.tar", ["postgresql-15"], True, ["bookworm amd64"]
    )
    assert first["changed"] and len(first["downloaded"]) == 5 and first["indexed"]
    assert debs.indexed_files((tmp_path / "d" / "Packages").read_text()) == first["packages"]
    apt.calls.clear()
    second = debs.prepare(
        apt, tmp_path / "d", tmp_path / "d.tar", ["postgresql-15"], True, ["bookworm amd64"]
    )
    assert not second["changed"] and second["downloaded"] == [] and not second["indexed"]
    assert second["archive_sha256"] == first["archive_sha256"]
    assert not any(call[:2] == ["apt-get", "download"] for call in apt.calls)


def test_a_new_version_replaces_the_old_file_and_the_index(tmp_path: Path, release: None) -> None:
    debs.prepare(
        FakeApt(SIMULATION), tmp_path / "d", tmp_path / "d.tar", ["postgresql-15"], True, []
    )
    newer = SIMULATION.replace("15.20-0+deb12u1", "15.21-0+deb12u1")
    result = debs.prepare(
        FakeApt(newer), tmp_path / "d", tmp_path / "d.tar", ["postgresql-15"], True, []
    )
    assert result["changed"]
    assert result["downloaded"] == ["postgresql-15_15.21-0+deb12u1_amd64.deb"]
    assert result["removed"] == ["postgresql-15_15.20-0+deb12u1_amd64.deb"]
    assert "postgresql-15_15.21-0+deb12u1_amd64.deb" in (tmp_path / "d" / "Packages").read_text()


def test_apt_lists_lacking_the_package_are_updated_once(tmp_path: Path, release: None) -> None:
    apt = FakeApt(SIMULATION, known=False)
    result = debs.prepare(apt, tmp_path / "d", tmp_path / "d.tar", ["postgresql-15"], True, [])
    assert result["apt_updated"] and [c for c in apt.calls if c[:2] == ["apt-get", "update"]] == [
        ["apt-get", "update"]
    ]


def test_a_package_the_sources_never_have_is_a_clear_failure(tmp_path: Path, release: None) -> None:
    class Never(FakeApt):
        def __call__(self, argv: list[str], cwd: Path | None) -> tuple[int, str, str]:
            if argv[:2] == ["apt-get", "-s"]:
                return 100, "", "E: Unable to locate package postgresql-15\n"
            return super().__call__(argv, cwd)

    with pytest.raises(debs.DebsError, match=r"have no postgresql-15.*Debian release"):
        debs.prepare(
            Never(SIMULATION), tmp_path / "d", tmp_path / "d.tar", ["postgresql-15"], True, []
        )


def test_hosts_of_another_release_are_refused(tmp_path: Path, release: None) -> None:
    naming = debs.Naming("the database hosts", "mesh_database_package_fetch")
    with pytest.raises(
        debs.DebsError,
        match=r"controller runs bookworm amd64, the database hosts trixie amd64.*"
        r"set mesh_database_package_fetch: false",
    ):
        debs.prepare(
            FakeApt(SIMULATION),
            tmp_path / "d",
            tmp_path / "d.tar",
            ["postgresql-15"],
            True,
            ["trixie amd64"],
            naming=naming,
        )


def test_a_hand_filled_directory_must_hold_each_package(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "postgresql-client-15_15.20-0+deb12u1_amd64.deb").write_bytes(b"x")
    with pytest.raises(debs.DebsError, match=r"no \.deb of postgresql-15"):
        debs.prepare(
            FakeApt(""),
            folder,
            tmp_path / "d.tar",
            ["postgresql-15", "postgresql-client-15"],
            False,
            [],
        )
    (folder / "postgresql-15_15.20-0+deb12u1_amd64.deb").write_bytes(b"y")
    done = debs.prepare(FakeApt(""), folder, tmp_path / "d.tar", ["postgresql-15"], False, [])
    assert done["indexed"] and done["changed"]
    assert not debs.prepare(FakeApt(""), folder, tmp_path / "d.tar", ["postgresql-15"], False, [])[
        "changed"
    ]


# What PostgreSQL 15 stored for CREATE ROLE ... PASSWORD 'pencil' (scram-sha-256).
SERVER_VERIFIER = (
    "SCRAM-SHA-256$4096:MBkSGy+3Tp3T7SQzBGDk+A==$4EHBNnWvcoIP//Hv+m7qV3tZo8F97U96VsH6ql+ihF4="
    ":MAuCbNeZ1kscWNs/jKtzYfLshzwjgFcZKXmO0HuIAfQ="
)


def test_the_scram_verifier_follows_rfc_7677_and_is_recognised() -> None:
    assert account.verifier_matches(SERVER_VERIFIER, "pencil")
    assert not account.verifier_matches(SERVER_VERIFIER, "Pencil")
    salt = base64.b64decode("MBkSGy+3Tp3T7SQzBGDk+A==")
    assert account.scram_verifier("pencil", salt) == SERVER_VERIFIER
    made = account.scram_verifier("pencil", bytes(range(16)))
    assert account.verifier_matches(made, "pencil")
    assert not account.verifier_matches(made, "pencil2")
    assert not account.verifier_matches("md5abcdef", "pencil")
    assert not account.verifier_matches("", "pencil")


def _state(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "role": True,
        "verifier": account.scram_verifier("s3cret", b"0123456789abcdef"),
        "login": True,
        "database": True,
        "owner": "mesh_registry",
        "public_connect": False,
    }
    return {**base, **overrides}


def test_nothing_to_do_when_role_password_and_database_are_right() -> None:
    assert account.plan(_state(), "mesh_registry", "mesh_registry", "s3cret", b"x" * 16) == ([], [])


def test_a_fresh_server_gets_the_role_the_database_and_no_public_connect() -> None:
    fresh = _state(role=False, verifier="", login=False, database=False, owner="")
    sql, changes = account.plan(fresh, "mesh_registry", "mesh_registry", "s3cret", b"x" * 16)
    assert changes == ["role mesh_registry created", "database mesh_registry created"]
    joined = "\n".join(sql)
    assert "s3cret" not in joined and "SCRAM-SHA-256$4096:" in joined
    assert 'OWNER "mesh_registry"' in joined and "FROM PUBLIC" in joined


def test_a_changed_password_is_set_again_as_a_verifier() -> None:
    sql, changes = account.plan(_state(), "mesh_registry", "mesh_registry", "other", b"x" * 16)
    assert changes == ["password of role mesh_registry set"]
    assert (
        len(sql) == 1
        and "other" not in sql[0]
        and sql[0].startswith('ALTER ROLE "mesh_registry" PASSWORD')
    )


def test_bad_names_and_passwords_are_refused_without_showing_the_password() -> None:
    with pytest.raises(account.AccountError, match="identifier"):
        account.check_inputs("mesh-registry", "mesh_registry", "x")
    with pytest.raises(account.AccountError, match="empty"):
        account.check_inputs("mesh_registry", "mesh_registry", "")
    with pytest.raises(account.AccountError, match="printable ASCII") as refused:
        account.check_inputs("mesh_registry", "mesh_registry", "pässwort")
    assert "pässwort" not in str(refused.value)


def test_psql_errors_lose_verifiers_and_the_password() -> None:
    text = "ERROR: bad PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi' near \"hunter2\""
    scrubbed = account._scrub(text, "hunter2")
    assert "hunter2" not in scrubbed and "abc$def" not in scrubbed


LISTING = """\
;
; Archive created at 2026-11-30 09:00:00 UTC
;     dbname: mesh_registry
;
; Selected TOC Entries:
;
5; 2615 2200 SCHEMA - public pg_database_owner
215; 1259 16390 TABLE public agents mesh_registry
216; 1259 16400 TABLE public key_bindings mesh_registry
3360; 0 16390 TABLE DATA public agents mesh_registry
3361; 0 16400 TABLE DATA public key_bindings mesh_registry
3200; 2606 16410 CONSTRAINT public agents agents_pkey mesh_registry
"""


def test_a_listing_names_the_tables_and_their_data() -> None:
    verdict = dump.listing_verdict(0, LISTING, "")
    assert verdict["ok"] and verdict["tables"] == ["public.agents", "public.key_bindings"]
    assert verdict["table_data"] == 2


def test_a_dump_pg_restore_cannot_list_is_refused_with_its_reason() -> None:
    verdict = dump.listing_verdict(
        1, "", "pg_restore: error: input file does not appear to be a valid archive\n"
    )
    assert not verdict["ok"] and "does not appear to be a valid archive" in str(verdict["reason"])


def test_the_latest_or_named_dump_is_picked_and_old_ones_pruned(tmp_path: Path) -> None:
    names = [
        dump.dump_name("mesh-registry", t) for t in (1_800_000_000, 1_800_000_100, 1_800_000_200)
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".mesh-registry-20270101T000000Z.dump.partial").write_bytes(b"x")
    (tmp_path / "other-20270101T000000Z.dump").write_bytes(b"x")
    assert dump.pick(tmp_path, "mesh-registry", "latest").name == names[-1]
    assert dump.pick(tmp_path, "mesh-registry", names[0].removesuffix(".dump")).name == names[0]
    with pytest.raises(dump.DumpError, match="no dump nope"):
        dump.pick(tmp_path, "mesh-registry", "nope")
    with pytest.raises(dump.DumpError, match=r"not '\.\./x'"):
        dump.pick(tmp_path, "mesh-registry", "../x")
    found = dump.dumps_of(tmp_path, "mesh-registry")
    assert [p.name for p in dump.to_prune(found, 2)] == [names[0]]
    assert dump.to_prune(found, 0) == []


def test_a_sealed_copy_opens_only_with_the_identity_and_matches_the_hosts_hash(
    tmp_path: Path,
) -> None:
    identity = str(pyrage.x25519.Identity.generate())
    plain = tmp_path / "mesh-registry-20270101T000000Z.dump"
    plain.write_bytes(b"PGDMP dump bytes")
    digest = hashlib.sha256(b"PGDMP dump bytes").hexdigest()
    with pytest.raises(age.AgeError, match="the host wrote 00"):
        age.seal(plain, "00", identity)
    sealed = age.seal(plain, digest, identity)
    assert not plain.exists() and sealed["plain_sha256"] == digest
    path = Path(str(sealed["path"]))
    assert path.stat().st_mode & 0o777 == 0o600
    assert not age.seal(plain, digest, identity)["changed"]  # sealed already
    assert age.pick_sealed(tmp_path, "mesh-registry", "latest") == path
    opened = age.open_sealed(path, tmp_path / "out.dump", identity)
    assert (tmp_path / "out.dump").read_bytes() == b"PGDMP dump bytes" and opened[
        "sha256"
    ] == digest
    with pytest.raises(age.AgeError, match="age refuses"):
        age.open_sealed(path, tmp_path / "x.dump", str(pyrage.x25519.Identity.generate()))
    with pytest.raises(age.AgeError, match="one age identity") as refused:
        age.open_sealed(path, tmp_path / "x.dump", "not-a-key")
    assert "not-a-key" not in str(refused.value)
