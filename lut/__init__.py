"""Operator/block signatures and latency lookup tables (no device I/O)."""
