"""The one error the lab command turns into a clean message and a non-zero exit."""


class LabError(Exception):
    """Something the operator can act on; printed as one message, never a traceback."""
