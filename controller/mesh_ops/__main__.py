"""`python -m mesh_ops`, the same as the `mesh-ops` command."""

import sys

from mesh_ops.cli import main

sys.exit(main())
