"""Action of mcp_mesh.ops.mesh_release: with `src` (state=installed), send the controller's packed
virtualenv to the host's temporary directory and run the module on it, one transfer and one
module run; in check mode nothing is sent and the module only says whether it would install.
Without `src` (state=prepared or current) nothing is sent and no temporary directory is made on
the host: the module runs alone, pipelined like any other."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

MODULE = "mcp_mesh.ops.mesh_release"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def _early_needs_tmp_path(self) -> bool:
        """A temporary directory (two more commands on the host) only for a file to send."""
        return not self._task.check_mode and self._task.args.get("src") is not None

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp  # the connection's temporary directory (made by super().run) is used
        args = dict(self._task.args)
        src = args.pop("src", None)
        try:
            if not self._task.check_mode and src is not None:
                source = self._loader.get_real_file(self._find_needle("files", src))
                shell = self._connection._shell
                remote = shell.join_path(shell.tmpdir, "mesh-release.tar")
                self._transfer_file(source, remote)
                self._fixup_perms2((shell.tmpdir, remote))
                args["src"] = remote
            result.update(
                self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            )
        except AnsibleActionFail as exc:
            result.update(exc.result)
        finally:
            if self._connection._shell.tmpdir:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
