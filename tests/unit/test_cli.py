import subprocess
import sys

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.cli import main


def test_version_is_printed_by_the_console_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"mcp-mesh-sdk {__version__}"


def test_no_command_prints_help_and_fails(capsys) -> None:
    assert main([]) == 2
    assert "usage: mcp-mesh-sdk" in capsys.readouterr().out
