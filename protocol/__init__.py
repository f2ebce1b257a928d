"""Kith wire protocol: pure, sans-I/O."""
