"""State migrations, one module each, applied in `ID` order by `mcp-mesh-sdk migrate`.

A module defines `ID` (`NNNN_snake_case`, the number is the state schema version it brings),
`DESCRIPTION`, `up(state_dir: Path)` and `down(state_dir: Path)`. Every module in this package
is discovered; write `up` and `down` so that running them again after a crash is harmless.
"""
