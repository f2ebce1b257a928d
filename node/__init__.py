"""Kith node: everything with I/O."""
