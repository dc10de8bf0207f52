"""Thin command-line adapters; the logic lives in the modules they call."""
