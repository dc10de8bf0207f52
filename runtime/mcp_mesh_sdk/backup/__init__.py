"""Backups of one host: config, env file, state and data in one verified tar.gz archive,
encrypted and authenticated with the host's age identity (`encryption.py`).

Layout of the tar.gz inside: the first member is `MANIFEST.json` (see `manifest.py`), then
`MANIFEST.hmac` (its HMAC), `config/...`, `env/<env file>` (only when the env file is outside
the config directory), `state/...` and `data/...`. The gzip stream is a series of independent
gzip members, so it is compressed on every core while staying readable by `tar`, `gzip` and
Python's `tarfile`.
"""
