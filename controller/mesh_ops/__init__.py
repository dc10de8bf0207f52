"""Operator tools that run on the controller (never shipped to the hosts).

`mesh-ops` (mesh_ops.cli) acts on the fleet over SSH; `mesh_ops.status` prints the fleet table
from results playbooks/fleet_status.yml gathered; `mesh_ops.diagnostics_report` renders what
playbooks/diagnostics.yml gathered into reports/diagnostics-<time>.json and .md.
"""
