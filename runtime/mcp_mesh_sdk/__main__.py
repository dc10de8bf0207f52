from mcp_mesh_sdk.cli import main

raise SystemExit(main())
