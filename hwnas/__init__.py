"""hwnas: hardware-in-the-loop latency measurement, LUTs and cost models for hardware-aware NAS."""

__version__ = "0.1.0"
