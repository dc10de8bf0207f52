"""Action of mcp_mesh.ops.mesh_files: render each file's template on the controller, as
ansible.builtin.template does, and run the module once with the texts. A secret file's text goes
in `secret_content`, which the module declares no_log: it is masked in every result."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ansible._internal._templating import _template_vars
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

MODULE = "mcp_mesh.ops.mesh_files"
FILE_KEYS = ("dest", "owner", "group", "mode", "validate")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        template_var = args.pop("template_var", "item")
        try:
            args["files"] = [
                self._module_entry(entry, template_var, task_vars)
                for entry in args.get("files", [])
            ]
            result.update(
                self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            )
        except AnsibleActionFail as exc:
            result.update(exc.result)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _module_entry(
        self, entry: dict[str, Any], template_var: str, task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        """The module's view of one file: its attributes and its text, shown or secret."""
        if not isinstance(entry, dict) or "dest" not in entry:
            raise AnsibleActionFail(f"each file needs a dest: {entry!r:.80}")
        if ("src" in entry) == ("content" in entry):
            raise AnsibleActionFail(f"{entry['dest']}: give src (a template) or content, not both")
        text = (
            self._render(entry["src"], entry, template_var, task_vars)
            if "src" in entry
            else str(entry["content"])
        )
        module_entry = {key: entry[key] for key in FILE_KEYS if entry.get(key) is not None}
        if entry.get("secret"):  # base64: see the module's secret_content
            module_entry["secret_content"] = base64.b64encode(text.encode("utf-8")).decode()
        else:
            module_entry["content"] = text
        return module_entry

    def _render(
        self, src: str, entry: dict[str, Any], template_var: str, task_vars: dict[str, Any]
    ) -> str:
        """`src` rendered as ansible.builtin.template renders it (trim_blocks, ansible_managed)."""
        try:
            source = self._find_needle("templates", src)
        except AnsibleError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        bases = [*task_vars.get("ansible_search_path", []), self._loader._basedir]
        bases.append(str(Path(source).parent))
        searchpath = [path for base in bases for path in (str(Path(base) / "templates"), base)]
        variables = dict(task_vars)
        variables.update(
            _template_vars.generate_ansible_template_vars(
                path=src,
                fullpath=source,
                dest_path=entry["dest"],
                include_ansible_managed="ansible_managed" not in variables,
            )
        )
        variables[template_var] = entry
        templar = self._templar.copy_with_new_env(
            searchpath=searchpath, available_variables=variables
        )
        text = templar.template(
            trust_as_template(self._loader.get_text_file_contents(source)),
            escape_backslashes=False,
            overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"},
        )
        return "" if text is None else str(text)
