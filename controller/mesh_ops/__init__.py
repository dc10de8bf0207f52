"""Operator tools that run on the controller (never shipped to the hosts).

`mesh_ops.diagnostics_report` renders what playbooks/diagnostics.yml gathered into
reports/diagnostics-<time>.json and .md.
"""
