"""The agent's OCI image of a release (`make image`), built offline with buildah.

    python -m mesh_ops.image build [--tag REF] [--suite bookworm] [--json]

Run from the repository (as root, like the lab), it builds, with no network:

1. the root file system: the lab's Debian base root (lab.base_image.ensure_base, built once and
   cached), copied without documentation, manuals, locales and apt's lists into a container
   made `from scratch`;
2. the release: the wheelhouse the roles deploy hosts from (roles/mesh_common's mesh_wheelhouse
   module, run as it is, cached in .cache/wheelhouse by version and build id, for the image's
   own Python), installed with `pip --no-index` into a virtualenv, <mesh_common_install_dir>/venv,
   from a read-only mount the image does not keep, inside a container with no network;
3. the configuration: a non-root user (mesh_common_user, uid 10001), the directories the agent
   writes (those the Deployment gives a volume), owned by it, and as ENV the agent's environment
   for the roles' defaults: both read off the manifests playbooks/kubernetes.yml renders, its
   ConfigMap from the same template as agent.env (no secrets: pass MCP_MESH_TOKEN at run time);
4. `CMD ["mcp-mesh-sdk", "serve"]` and the seed's HEALTHCHECK timings (every 30 s, timeout
   10 s, start period 5 s, 3 retries), probing /health: OCI images have no HEALTHCHECK, so the
   image is committed in docker format (`buildah commit --format docker`).

The image is tagged localhost/mcp-mesh-sdk:<version> unless --tag names another reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from mesh_ops.inventory import REPO

IMAGE = "localhost/mcp-mesh-sdk"
USER_ID = 10001
WHEELHOUSE_MOUNT = "/run/mcp-mesh-wheelhouse"
WHEELHOUSE_MODULE = REPO / "plugins" / "modules" / "mesh_wheelhouse.py"
WHEELHOUSE_CACHE = REPO / ".cache" / "wheelhouse"  # mesh_common_wheelhouse_cache_dir's default
COMMON_DEFAULTS = REPO / "roles" / "mesh_common" / "defaults" / "main.yml"
KUBERNETES_PLAYBOOK = REPO / "playbooks" / "kubernetes.yml"
# What a container does not need from the lab's base root (paths relative to it).
EXCLUDED = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "var/log",
)
# The seed's HEALTHCHECK (--interval=30s --timeout=10s --start-period=5s --retries=3), probing the
# agent's /health instead of only importing the package.
HEALTHCHECK = "curl -fsS -o /dev/null http://127.0.0.1:${MCP_MESH_PORT:-8080}/health || exit 1"
HEALTHCHECK_OPTIONS = {"interval": "30s", "timeout": "10s", "start-period": "5s", "retries": "3"}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Each buildah run: runc (crun refuses the machine's hybrid cgroups), no network at all.
RUN_OPTIONS = ("--runtime", "runc", "--network", "none")
# The inventory the image's environment is rendered for: the roles' defaults, one agent, the
# registry reached by the name `mesh-registry`. The token is a placeholder the playbook needs to
# render its Secret, which is thrown away.
DEFAULTS_INVENTORY = {
    "all": {
        "vars": {"mesh_agent_token": "image-build-placeholder-not-a-secret"},
        "children": {
            "agents": {"hosts": {"mcp-mesh-agent": {}}},
            "registry": {"hosts": {"mesh-registry": {}}},
        },
    }
}


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Wheelhouse:
    version: str
    build_id: str
    archive: Path


@dataclass(frozen=True)
class Image:
    reference: str
    version: str
    build_id: str
    seconds: float
    size_bytes: int


def wheelhouse_module() -> ModuleType:
    """plugins/modules/mesh_wheelhouse.py, for its constants (TARGET_PROBE, ...)."""
    spec = importlib.util.spec_from_file_location("mesh_wheelhouse", WHEELHOUSE_MODULE)
    if spec is None or spec.loader is None:
        raise ImageError(f"cannot load {WHEELHOUSE_MODULE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_wheelhouse(
    target: str | None = None,
    cache: Path = WHEELHOUSE_CACHE,
    source: Path = REPO,
    python: str = sys.executable,
) -> Wheelhouse:
    """The release's wheelhouse for `target` (`MAJOR.MINOR MACHINE GLIBC` as the module's
    TARGET_PROBE prints it; None: this interpreter's), built by the roles' own mesh_wheelhouse
    module when the cache has none for this source. The module runs as Ansible runs it locally
    (its arguments in a JSON file), so cache, lock and build id are the roles'."""
    arguments = {"source_dir": str(source), "cache_dir": str(cache), "python": python}
    arguments["targets"] = [target] if target else []
    with tempfile.TemporaryDirectory(prefix="mesh-wheelhouse-args-") as folder:
        args_file = Path(folder) / "args.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": arguments}))
        done = subprocess.run(
            [python, str(WHEELHOUSE_MODULE), str(args_file)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
            env={**os.environ, "PIP_NO_INPUT": "1"},
        )
    return parse_wheelhouse_result(done.stdout, done.returncode, target)


def parse_wheelhouse_result(stdout: str, returncode: int, target: str | None) -> Wheelhouse:
    """The module's JSON answer (its last line of output) as a Wheelhouse."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    if returncode != 0 or result.get("failed") or "version" not in result:
        message = result.get("msg") or stdout[-2000:] or f"exit {returncode}"
        raise ImageError(f"mesh_wheelhouse failed: {message}")
    archive = result["archives"].get(target, result["archive"]) if target else result["archive"]
    return Wheelhouse(result["version"], result["build_id"], Path(archive))


def common_defaults() -> dict[str, Any]:
    """roles/mesh_common's defaults: the service account and install directory the roles use."""
    defaults = yaml.safe_load(COMMON_DEFAULTS.read_text(encoding="utf-8"))
    assert isinstance(defaults, dict)
    return defaults


def service_user() -> str:
    """The service account the roles create (mesh_common_user), the image's user too."""
    return str(common_defaults()["mesh_common_user"])


def venv_dir() -> str:
    """Where the image's release lives: <mesh_common_install_dir>/venv."""
    return f"{common_defaults()['mesh_common_install_dir']}/venv"


@dataclass(frozen=True)
class Settings:
    """What the image takes from playbooks/kubernetes.yml's manifests: the ConfigMap's
    environment and the directories the Deployment gives an emptyDir (the agent writes them)."""

    env: dict[str, str]
    writable: list[str]


def rendered_settings(inventory: dict[str, Any] | None = None) -> Settings:
    """Settings for `inventory` (default: the roles' defaults), rendered by the playbook."""
    with tempfile.TemporaryDirectory(prefix="mesh-image-env-") as folder:
        work = Path(folder)
        hosts = work / "hosts.yml"
        hosts.write_text(yaml.safe_dump(inventory or DEFAULTS_INVENTORY))
        command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(hosts)]
        command += [str(KUBERNETES_PLAYBOOK), "-e", f"mesh_kubernetes_output_dir={work / 'out'}"]
        command += ["-e", f"ansible_python_interpreter={sys.executable}"]
        done = subprocess.run(
            command,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        )
        if done.returncode != 0:
            raise ImageError(f"{KUBERNETES_PLAYBOOK.name} failed:\n{done.stdout[-3000:]}")
        configmap = yaml.safe_load((work / "out" / "configmap.yml").read_text())
        deployment = yaml.safe_load((work / "out" / "deployment.yml").read_text())
    return Settings(
        env={str(name): str(value) for name, value in configmap["data"].items()},
        writable=emptydir_mounts(deployment),
    )


def emptydir_mounts(deployment: dict[str, Any]) -> list[str]:
    """Where the Deployment mounts an emptyDir, but /tmp (a writable folder of every image)."""
    pod = deployment["spec"]["template"]["spec"]
    empty = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
    return sorted(
        mount["mountPath"]
        for container in pod["containers"]
        for mount in container.get("volumeMounts", [])
        if mount["name"] in empty and mount["mountPath"] != "/tmp"
    )


def config_arguments(
    env: dict[str, str], version: str, build_id: str, user_id: int = USER_ID
) -> list[str]:
    """`buildah config` options: user, environment, port, command, HEALTHCHECK, labels."""
    arguments = ["--user", f"{user_id}:{user_id}", "--workingdir", "/var/lib/mcp-mesh"]
    arguments += ["--env", f"PATH={venv_dir()}/bin:{SYSTEM_PATH}", "--env", "PYTHONUNBUFFERED=1"]
    for name, value in env.items():
        arguments += ["--env", f"{name}={value}"]
    if env.get("MCP_MESH_PORT"):
        arguments += ["--port", f"{env['MCP_MESH_PORT']}/tcp"]
    arguments += ["--cmd", json.dumps(["mcp-mesh-sdk", "serve"])]
    # buildah splits the value into words: the quotes keep the shell command one word.
    arguments += ["--stop-signal", "SIGTERM", "--healthcheck", f'CMD-SHELL "{HEALTHCHECK}"']
    for option, value in HEALTHCHECK_OPTIONS.items():
        arguments += [f"--healthcheck-{option}", value]
    labels = {
        "org.opencontainers.image.title": "mcp-mesh-sdk",
        "org.opencontainers.image.description": "MCP Mesh agent (mcp-mesh-sdk serve)",
        "org.opencontainers.image.version": version,
        "io.mcp-mesh.build-id": build_id,
    }
    for name, value in labels.items():
        arguments += ["--label", f"{name}={value}"]
    return arguments


def tar_excludes(excluded: Sequence[str] = EXCLUDED) -> list[str]:
    return [f"--exclude=./{path}" for path in excluded]


def run(command: Sequence[str], timeout: float = 600) -> str:
    done = subprocess.run(
        list(command), capture_output=True, text=True, check=False, timeout=timeout
    )
    if done.returncode != 0:
        raise ImageError(
            f"{' '.join(command[:4])} ... failed (exit {done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return done.stdout.strip()


def copy_root(base: Path, mount: Path) -> None:
    """The base root into the container's mount, without what EXCLUDED names."""
    with subprocess.Popen(
        ["tar", "-C", str(base), *tar_excludes(), "-cf", "-", "."], stdout=subprocess.PIPE
    ) as pack:
        unpack = subprocess.run(
            ["tar", "-C", str(mount), "-xf", "-"], stdin=pack.stdout, check=False
        )
    if pack.returncode != 0 or unpack.returncode != 0:
        raise ImageError(f"copying {base} into the image failed")


def build_image(
    tag: str | None = None,
    suite: str = "bookworm",
    say: Callable[[str], None] = lambda _: None,
) -> Image:
    """Build the image of the source tree's release; see the module's doc."""
    from lab.base_image import ensure_base  # the repository's lab package (run from REPO)

    started = time.monotonic()
    for tool in ("buildah", "podman", "runc", "tar"):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is not installed (run `make system-deps` as root)")
    say(f"base root ({suite})")
    base = ensure_base(suite)
    container = f"mcp-mesh-image-{secrets.token_hex(4)}"
    run(["buildah", "from", "--format", "docker", "--name", container, "scratch"])
    try:
        copy_root(base, Path(run(["buildah", "mount", container])))
        run_in = ["buildah", "run", *RUN_OPTIONS, container, "--"]
        target = run([*run_in, "python3", "-c", wheelhouse_module().TARGET_PROBE])
        say(f"wheelhouse for Python {target}")
        wheelhouse = ensure_wheelhouse(target)
        reference = tag or f"{IMAGE}:{wheelhouse.version}"
        settings = rendered_settings()
        env = settings.env
        user = service_user()
        with tempfile.TemporaryDirectory(prefix="mesh-image-wheels-") as folder:
            with tarfile.open(wheelhouse.archive) as archive:
                archive.extractall(folder, filter="data")
            Path(folder).chmod(0o755)
            say(f"installing release {wheelhouse.version}")
            with_wheels = ["buildah", "run", *RUN_OPTIONS]
            with_wheels += ["--volume", f"{folder}:{WHEELHOUSE_MOUNT}:ro", container, "--"]
            run([*run_in, "python3", "-m", "venv", venv_dir()])
            pip = [f"{venv_dir()}/bin/pip", "install", "--no-index", "--no-cache-dir", "--quiet"]
            pip += ["--disable-pip-version-check", "--find-links", f"{WHEELHOUSE_MOUNT}/wheels"]
            run([*with_wheels, *pip, f"mcp-mesh-sdk=={wheelhouse.version}"])
        run([*run_in, "groupadd", "--system", "--gid", str(USER_ID), user])
        account = ["useradd", "--system", "--uid", str(USER_ID), "--gid", str(USER_ID)]
        account += ["--home-dir", "/var/lib/mcp-mesh", "--no-create-home"]
        run([*run_in, *account, "--shell", "/usr/sbin/nologin", user])
        owned = ["install", "-d", "-o", user, "-g", user, "-m", "0750"]
        run([*run_in, *owned, *settings.writable])
        clients = env.get("MCP_MESH_CLIENTS_FILE")
        if clients:  # no client but MCP_MESH_TOKEN's until a clients file is mounted there
            run([*run_in, "install", "-d", "-m", "0755", str(Path(clients).parent)])
            run([*run_in, "install", "-m", "0644", "/dev/null", clients])
        say("configuring and committing (docker format: it keeps the HEALTHCHECK)")
        run(["buildah", "config", *config_arguments(env, wheelhouse.version, wheelhouse.build_id),
             container])  # fmt: skip
        run(["buildah", "commit", "--quiet", "--format", "docker", "--rm", container, reference])
    except BaseException:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
        raise
    return Image(
        reference,
        wheelhouse.version,
        wheelhouse.build_id,
        round(time.monotonic() - started, 1),
        image_size(reference),
    )


def image_size(reference: str) -> int:
    """The image's size in bytes (its one layer, uncompressed), as podman reports it."""
    return int(run(["podman", "image", "inspect", "--format", "{{.Size}}", reference]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesh_ops.image", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the release's image")
    build.add_argument("--tag", help=f"image reference (default {IMAGE}:<version>)")
    build.add_argument("--suite", default="bookworm", help="Debian release of the base root")
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        image = build_image(args.tag, args.suite, say=lambda text: print(f"image: {text}"))
    except ImageError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(image)))
    else:
        print(
            f"image: {image.reference} (release {image.version}, "
            f"{image.size_bytes / 1e6:.0f} MB) built in {image.seconds:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
