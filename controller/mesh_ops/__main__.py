"""`python -m mesh_ops` (what the `mesh-ops` wrapper `make venv` installs runs)."""

import sys

from mesh_ops.cli import main

sys.exit(main())
