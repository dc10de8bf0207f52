"""The collection mcp_mesh.ops (galaxy.yml): its version is the runtime's, its tarball holds
exactly what the roles and playbooks need (the runtime's source among it, so an installed
collection builds the hosts' wheelhouse itself) and nothing of the checkout's tooling, caches or
secrets; installed from the tarball alone, every playbook resolves its roles, modules and
filters; and ansible-test sanity passes on it (the tests that run offline, see SANITY_TESTS).

The lab suite deploys its fleet from the same installed tarball (tests/lab/fleet/conftest.py).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from mcp_mesh_sdk import __version__
from tests.collection import BIN, REPO, Installed, build

# What the collection ships: these top-level directories and files, each as git tracks it.
SHIPPED = ("meta", "playbooks", "plugins", "roles", "runtime", "tests/sanity")
SHIPPED_FILES = ("CHANGELOG.md", "README.md", "pyproject.toml")
# What ansible-galaxy adds to the tarball.
GENERATED = {"MANIFEST.json", "FILES.json"}
# ansible-test sanity tests run here. The rest are skipped, and why:
#   ansible-doc, import, pep8, pylint, runtime-metadata, validate-modules, yamllint: ansible-test
#     installs each one's pinned tools into a virtual environment of its own, bootstrapping pip
#     there with get-pip.py downloaded from ci-files.testing.ansible.com, a host this offline
#     controller cannot reach (only the package registries are); with no way to point them at
#     the project's venv, they cannot run. In their place: ansible-doc and validate-modules'
#     documentation checks are test_every_plugin_of_the_installed_collection_is_documented and
#     test_each_modules_documented_options_are_its_argument_spec below (ansible-doc --json on
#     every module and filter of the installed collection; each module's documented options
#     against the argument_spec its AnsibleModule(...) call passes); make lint covers the rest
#     on the same files (ruff for pep8/pylint's checks, yamllint --strict, ansible-lint's
#     production profile on the roles and playbooks); the modules' behaviour is unit-tested
#     (tests/unit/test_role_*modules*.py, test_role_wheelhouse.py).
#   changelog: the collection keeps no changelogs/ fragments (antsibull-changelog).
#   pslint: no PowerShell in the collection.
#   shellcheck: no shell scripts in the collection (and no shellcheck binary on the controller).
SANITY_TESTS = (
    "action-plugin-docs",
    "compile",
    "empty-init",
    "ignores",
    "line-endings",
    "no-assert",
    "no-get-exception",
    "no-illegal-filenames",
    "no-smart-quotes",
    "replace-urlopen",
    "shebang",
    "symlinks",
    "use-argspec-type-path",
    "use-compat-six",
)


def galaxy() -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("collection-build"))


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return Installed.create(tarball, tmp_path_factory.mktemp("collection"))


def members(tarball: Path) -> set[str]:
    with tarfile.open(tarball) as archive:
        return {member.name for member in archive.getmembers() if not member.isdir()}


def tracked(*paths: str) -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--", *paths], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return {path for path in listed if (REPO / path).is_file() and not (REPO / path).is_symlink()}


def test_the_collection_is_named_and_versioned_as_the_runtime() -> None:
    data = galaxy()
    assert (data["namespace"], data["name"]) == ("mcp_mesh", "ops")
    assert data["version"] == __version__, "galaxy.yml's version is not the runtime's"
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"\n## {__version__}\n" in changelog, "CHANGELOG.md has no section for this version"


def test_requires_ansible_is_the_ansible_core_the_project_pins() -> None:
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    with (REPO / "pyproject.toml").open("rb") as handle:
        dev = tomllib.load(handle)["project"]["optional-dependencies"]["dev"]
    (pin,) = [entry for entry in dev if entry.startswith("ansible-core")]
    low, high = re.findall(r"\d+\.\d+", pin)
    assert runtime["requires_ansible"] == f">={low}.0,<{high}.0"


def test_the_tarball_holds_exactly_what_the_collection_needs(tarball: Path) -> None:
    """Every tracked file of the roles, playbooks, plugins and the runtime's source, and nothing
    else: no tests/ but the sanity ignore file, no lab/, bench/, controller/, inventories/
    (the lab's keys), no .venv, build or dist output, backups/, reports/, .cache/ (secrets and
    wheelhouses), __pycache__ or *.egg-info that the working tree holds beside them."""
    expected = tracked(*SHIPPED, *SHIPPED_FILES) | GENERATED
    expected -= {"playbooks/lab_facts.yml"}  # runs the lab's own `python -m lab facts`
    assert members(tarball) == expected


def test_the_tarball_carries_what_the_roles_build_the_release_from(tarball: Path) -> None:
    names = members(tarball)
    for needed in (
        "pyproject.toml",
        "README.md",  # pyproject's readme: the wheel's metadata needs it
        "runtime/mcp_mesh_sdk/__init__.py",
        "plugins/modules/mesh_wheelhouse.py",
        "plugins/filter/mesh_hosts.py",
        "roles/mesh_common/tasks/wheelhouse.yml",
        "playbooks/site.yml",
        "playbooks/tasks/host_cycle.yml",
        "meta/runtime.yml",
    ):
        assert needed in names
    for top in ("tests/unit/", "tests/lab/", "lab/", "bench/", "collections/", ".venv/", "build/"):
        assert not any(name.startswith(top) for name in names), top


def _wheelhouse_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mesh_wheelhouse", REPO / "plugins" / "modules" / "mesh_wheelhouse.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_installed_collection_builds_the_checkouts_release(installed: Installed) -> None:
    """mesh_common's default source is the collection's root: the same version and the same
    build id (digest of pyproject.toml and runtime/) as the checkout's tree."""
    wheelhouse = _wheelhouse_module()
    assert wheelhouse.read_version(installed.root) == __version__
    assert wheelhouse.build_id(installed.root, __version__) == wheelhouse.build_id(
        REPO, __version__
    )


def test_every_playbook_resolves_from_the_installed_collection_alone(
    installed: Installed, tarball: Path
) -> None:
    """`ansible-playbook mcp_mesh.ops.NAME --syntax-check` outside the checkout: roles by short
    name, modules and filters by FQCN and task files by relative path all come from the
    collection (a name it cannot resolve fails the syntax check)."""
    assert str(REPO) not in (installed.workdir / "ansible.cfg").read_text()
    playbooks = sorted(
        Path(name).stem
        for name in members(tarball)
        if re.fullmatch(r"playbooks/[a-z_]+\.yml", name)
    )
    assert "site" in playbooks
    names = [f"mcp_mesh.ops.{playbook}" for playbook in playbooks]
    run = installed.run(
        "ansible-playbook", "--syntax-check", "-i", "localhost,", *names, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def test_ansible_test_sanity_passes_on_the_installed_collection(installed: Installed) -> None:
    """ansible-test sanity, offline, from the controller's venv (--local, this Python), on the
    collection as ansible-galaxy installed it under .../ansible_collections/mcp_mesh/ops/."""
    command = [str(BIN / "ansible-test"), "sanity", "--local", "--color", "no"]
    command += ["--python", f"{sys.version_info.major}.{sys.version_info.minor}"]
    for test in SANITY_TESTS:
        command += ["--test", test]
    env = installed.env()
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    run = subprocess.run(
        command, cwd=installed.root, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for test in SANITY_TESTS:
        assert f'Running sanity test "{test}"' in run.stdout + run.stderr, test


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_mesh_doc_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def installed_filters(installed: Installed) -> dict[str, Callable[..., object]]:
    """Each filter of the installed collection (what its FilterModules return) by name."""
    filters: dict[str, Callable[..., object]] = {}
    for path in sorted((installed.root / "plugins" / "filter").glob("*.py")):
        filters |= _load(path).FilterModule().filters()
    return filters


def installed_plugins(installed: Installed) -> dict[str, list[str]]:
    """Plugin type -> the names the installed collection offers: a module per file of
    plugins/modules, each filter its FilterModule returns."""
    modules = sorted(path.stem for path in (installed.root / "plugins" / "modules").glob("*.py"))
    return {"module": modules, "filter": sorted(installed_filters(installed))}


def ansible_doc(installed: Installed, kind: str, name: str) -> tuple[dict[str, object], str]:
    """`ansible-doc --json -t KIND mcp_mesh.ops.NAME` outside the checkout -> (its doc, errors)."""
    run = installed.run("ansible-doc", "--json", "-t", kind, f"mcp_mesh.ops.{name}", check=False)
    if run.returncode != 0:
        return {}, run.stderr.strip() or run.stdout.strip()
    found = json.loads(run.stdout).get(f"mcp_mesh.ops.{name}") or {}
    doc: dict[str, object] = found.get("doc") or {}
    if not doc:
        return {}, f"no doc in ansible-doc's answer: {run.stdout[:500]}"
    if not doc.get("short_description") or not doc.get("description"):
        return doc, "no short_description or description"
    if not found.get("examples") or not found.get("return"):
        return doc, "no EXAMPLES or RETURN"
    # ansible-doc's text output refuses these; its --json output does not check.
    undescribed = [
        *_undescribed(doc.get("options"), "suboptions"),
        *_undescribed(found.get("return"), "contains"),
    ]
    if undescribed:
        return doc, f"no description: {undescribed}"
    return doc, ""


def _undescribed(entries: object, nested: str) -> list[str]:
    """The options (or return values) with no description, at any depth."""
    missing = []
    for key, entry in (entries or {}).items() if isinstance(entries, dict) else ():
        if not isinstance(entry, dict) or not entry.get("description"):
            missing.append(key)
        elif entry.get(nested):
            missing += [f"{key}.{sub}" for sub in _undescribed(entry[nested], nested)]
    return missing


def test_every_plugin_of_the_installed_collection_is_documented(installed: Installed) -> None:
    """What ansible-test's ansible-doc test checks: ansible-doc parses and shows the DOCUMENTATION,
    EXAMPLES and RETURN of every module and of every filter (plugins/filter/<name>.yml)."""
    plugins = installed_plugins(installed)
    assert "mesh_wheelhouse" in plugins["module"] and "mesh_registry_url" in plugins["filter"]
    failures = {}
    for kind, names in plugins.items():
        for name in names:
            doc, error = ansible_doc(installed, kind, name)
            if not error and doc.get("name", doc.get("module")) != name:
                error = f"documents {doc.get('name', doc.get('module'))!r}"
            if error:
                failures[f"{kind} {name}"] = error[-1500:]
    assert not failures, "\n".join(f"{key}: {value}" for key, value in failures.items())


class _Constructed(Exception):
    def __init__(self, kwargs: dict[str, object]) -> None:
        super().__init__("AnsibleModule(...) called")
        self.kwargs = kwargs


def argument_spec(installed: Installed, path: Path) -> dict[str, dict[str, object]]:
    """The argument_spec a module's main() gives AnsibleModule(...), captured before AnsibleModule
    reads any parameter (ansible-test's validate-modules does the same). The module imports the
    collection's module_utils from the installed collection, as Ansible's loader would give them."""
    sys.path.insert(0, str(installed.collections))
    try:
        module = _load(path)
    finally:
        sys.path.remove(str(installed.collections))

    def constructed(**kwargs: object) -> None:
        raise _Constructed(kwargs)

    module.AnsibleModule = constructed
    with pytest.raises(_Constructed) as called:
        module.main()
    spec: dict[str, dict[str, object]] = called.value.kwargs["argument_spec"]  # type: ignore[assignment]
    return spec


# The keys validate-modules allows in a module option's doc (no_log, for one, is not among them).
OPTION_DOC_KEYS = {
    "description",
    "required",
    "choices",
    "aliases",
    "version_added",
    "version_added_collection",
    "default",
    "type",
    "elements",
    "suboptions",
}


def option_facts(option: dict[str, object]) -> dict[str, object]:
    """What validate-modules compares between an option's doc and its spec (a missing type is
    str, a missing required false)."""
    return {
        "type": option.get("type") or "str",
        "elements": option.get("elements"),
        "required": bool(option.get("required", False)),
        "default": option.get("default"),
        "choices": option.get("choices"),
        "aliases": option.get("aliases") or [],
    }


def test_each_modules_documented_options_are_its_argument_spec(installed: Installed) -> None:
    """What validate-modules checks: the options ansible-doc shows for each module of the installed
    collection are its argument_spec (names, types, elements, required, defaults, choices), and
    each module names its author."""
    mismatches = {}
    for name in installed_plugins(installed)["module"]:
        doc, error = ansible_doc(installed, "module", name)
        if not doc:
            mismatches[name] = error[-1500:]
            continue
        if not doc.get("author"):
            mismatches[name] = "no author"
        documented = doc.get("options") or {}
        assert isinstance(documented, dict)
        spec = argument_spec(installed, installed.root / "plugins" / "modules" / f"{name}.py")
        for option in sorted(set(documented) | set(spec)):
            key = f"{name} {option}"
            if option not in spec:
                mismatches[key] = "documented, not in the argument_spec"
            elif option not in documented:
                mismatches[key] = "in the argument_spec, not documented"
            elif set(documented[option]) - OPTION_DOC_KEYS:
                mismatches[key] = f"doc keys {sorted(set(documented[option]) - OPTION_DOC_KEYS)}"
            elif option_facts(documented[option]) != option_facts(spec[option]):
                shown = option_facts(documented[option]), option_facts(spec[option])
                mismatches[key] = "doc {} != argument_spec {}".format(*shown)
    assert not mismatches, "\n".join(f"{key}: {value}" for key, value in mismatches.items())


def test_each_filters_documented_options_are_its_parameters(installed: Installed) -> None:
    """A filter's doc names its piped value _input and its other parameters as the function
    does, positional in the function's order, required when they have no default, with the
    function's defaults."""
    mismatches = {}
    for name, function in installed_filters(installed).items():
        doc, error = ansible_doc(installed, "filter", name)
        if not doc:
            mismatches[name] = error[-1500:]
            continue
        parameters = list(inspect.signature(function).parameters.values())
        names = ["_input", *(parameter.name for parameter in parameters[1:])]
        expected = {
            key: {
                "required": parameter.default is inspect.Parameter.empty,
                "default": None
                if parameter.default is inspect.Parameter.empty
                else (
                    list(parameter.default)
                    if isinstance(parameter.default, tuple)
                    else parameter.default
                ),
            }
            for key, parameter in zip(names, parameters, strict=True)
        }
        options = doc.get("options") or {}
        assert isinstance(options, dict)
        found = {
            key: {"required": bool(value.get("required")), "default": value.get("default")}
            for key, value in options.items()
        }
        positional = [word.strip() for word in str(doc.get("positional", "")).split(",")]
        if found != expected or positional != names:
            mismatches[name] = f"doc {positional} {found} != function {names} {expected}"
    assert not mismatches, "\n".join(f"{key}: {value}" for key, value in mismatches.items())


def readme_commands() -> list[list[str]]:
    """The commands of README's "Installing the collection", each as its words."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Installing the collection", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_the_readme_commands_build_install_and_run_the_collection(tmp_path: Path) -> None:
    """README's three commands as a user types them in the checkout (HOME a fresh directory):
    the build and the install verbatim; the run as a syntax check (the lab suite deploys with
    it, tests/lab/fleet/conftest.py), with no vault password to ask for."""
    build_cmd, install_cmd, run_cmd = readme_commands()
    assert build_cmd == ["make", "collection"]
    assert install_cmd[:3] == ["ansible-galaxy", "collection", "install"]
    assert run_cmd[:2] == ["ansible-playbook", "mcp_mesh.ops.site"]
    env = {key: value for key, value in os.environ.items() if key != "ANSIBLE_CONFIG"}
    env |= {"HOME": str(tmp_path), "PATH": f"{BIN}:{os.environ['PATH']}"}
    for command in (build_cmd, [arg.replace("~", str(tmp_path)) for arg in install_cmd]):
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    root = tmp_path / ".ansible" / "collections" / "ansible_collections" / "mcp_mesh" / "ops"
    assert json.loads((root / "MANIFEST.json").read_text())["collection_info"]["version"] == (
        __version__
    )
    # Outside the checkout, where only ~/.ansible/collections has the collection.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_args = [arg for arg in run_cmd if arg != "--ask-vault-pass"]
    run_args[run_args.index("-i") + 1] = "localhost,"
    done = subprocess.run(
        [*run_args, "--syntax-check"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_kubernetes_manifests_from_the_installed_collection_are_the_checkouts(
    installed: Installed, tmp_path: Path
) -> None:
    """mcp_mesh.ops.kubernetes finds the roles' templates in the collection (no roles_path leads
    there) and renders the same manifests as the checkout's playbooks/kubernetes.yml."""
    inventory = REPO / "tests" / "golden" / "inventory.yml"
    common = ["-i", str(inventory), "-e", f"ansible_python_interpreter={sys.executable}"]
    outputs = {}
    for name, run in (
        ("collection", lambda *args: installed.playbook("kubernetes", *args)),
        (
            "checkout",
            lambda *args: subprocess.run(
                [str(BIN / "ansible-playbook"), str(REPO / "playbooks" / "kubernetes.yml"), *args],
                cwd=REPO,
                capture_output=True,
                text=True,
                env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
            ),
        ),
    ):
        out = tmp_path / name
        done = run(*common, "-e", f"mesh_kubernetes_output_dir={out}")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        outputs[name] = {path.name: path.read_bytes() for path in sorted(out.glob("*.yml"))}
    assert sorted(outputs["collection"]) == [
        "configmap.yml",
        "deployment.yml",
        "secret.yml",
        "service.yml",
    ]
    assert outputs["collection"] == outputs["checkout"]
