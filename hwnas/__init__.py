"""hwnas: hardware-in-the-loop latency measurement, LUTs and cost models for hardware-aware NAS."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy re-exports: ``from hwnas import load_cost_model`` without importing scikit-learn at ``import hwnas``."""
    if name == "load_cost_model":
        from hwnas.costmodel_api import load_cost_model

        return load_cost_model
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
