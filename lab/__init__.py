"""The lab: a few real systemd hosts (systemd-nspawn containers) on a private bridge.

`python -m lab up|down|status|demo`. A base Debian root is built once with debootstrap and
cached outside the repo; every host boots from its own overlay over that base, in its own
network namespace, and is reachable over SSH with a key the lab generates. `up` writes an
Ansible inventory that testinfra reads too.
"""
