"""Every role default is declared in meta/argument_specs.yml with the same value, and back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "meta").is_dir())
ANSIBLE_TYPES = {"str", "int", "float", "bool", "list", "dict", "path", "raw"}
SECRET_WORDS = ("token", "secret", "password", "database_url", "identity")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    return data or {}


def defaults_of(role_dir: Path) -> dict[str, Any]:
    return _load(role_dir / "defaults" / "main.yml")


def main_options_of(role_dir: Path) -> dict[str, dict[str, Any]]:
    specs = _load(role_dir / "meta" / "argument_specs.yml")
    return (specs.get("argument_specs", {}).get("main") or {}).get("options") or {}


def spec_mismatches(role_dir: Path) -> list[str]:
    """Every way the role's defaults and its `main` argument spec disagree."""
    defaults, options = defaults_of(role_dir), main_options_of(role_dir)
    problems = [f"{name}: in defaults, not in the spec" for name in defaults.keys() - options]
    problems += [f"{name}: in the spec, not in defaults" for name in options.keys() - defaults]
    for name in defaults.keys() & options.keys():
        if options[name].get("default") != defaults[name]:
            problems.append(
                f"{name}: spec default {options[name].get('default')!r} != {defaults[name]!r}"
            )
    return sorted(problems)


def option_problems(role: str, options: dict[str, dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for name, option in options.items():
        if not name.startswith(f"{role}_"):
            problems.append(f"{name}: lacks the {role}_ prefix")
        if option.get("type") not in ANSIBLE_TYPES:
            problems.append(f"{name}: no valid type")
        if not option.get("description"):
            problems.append(f"{name}: no description")
        if option.get("type") == "list" and not option.get("elements"):
            problems.append(f"{name}: a list that does not say its elements")
        if "choices" in option and not set(_default_values(option)) <= set(option["choices"]):
            problems.append(f"{name}: default is not one of its choices")
        if any(word in name for word in SECRET_WORDS) and option.get("no_log") is not True:
            problems.append(f"{name}: a secret without no_log: true")
    return problems


def test_the_four_roles_exist() -> None:
    assert {"mesh_common", "mesh_agent", "mesh_registry", "mesh_loadbalancer"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_spec_agree(role: str) -> None:
    assert spec_mismatches(ROLES_DIR / role) == []


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_prefixed_typed_and_described(role: str) -> None:
    assert option_problems(role, main_options_of(ROLES_DIR / role)) == []


def test_a_mismatch_is_reported_in_both_directions(tmp_path: Path) -> None:
    role = tmp_path / "mesh_demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text("mesh_demo_port: 80\nmesh_demo_extra: 1\n")
    (role / "meta" / "argument_specs.yml").write_text(
        yaml.safe_dump(
            {
                "argument_specs": {
                    "main": {
                        "options": {
                            "mesh_demo_port": {"type": "int", "description": "p", "default": 81},
                            "mesh_demo_gone": {"type": "str", "description": "g", "default": ""},
                        }
                    }
                }
            }
        )
    )
    assert spec_mismatches(role) == [
        "mesh_demo_extra: in defaults, not in the spec",
        "mesh_demo_gone: in the spec, not in defaults",
        "mesh_demo_port: spec default 81 != 80",
    ]


def test_an_unprefixed_untyped_secret_is_reported() -> None:
    problems = option_problems("mesh_demo", {"api_token": {"description": "t"}})
    assert problems == [
        "api_token: lacks the mesh_demo_ prefix",
        "api_token: no valid type",
        "api_token: a secret without no_log: true",
    ]


def _default_values(option: dict[str, Any]) -> list[Any]:
    """The default, or each value a Jinja default expression can give (its quoted literals)."""
    default = option.get("default")
    if isinstance(default, str) and "{{" in default:
        return re.findall(r"'([^']*)'", default)
    return [default]
