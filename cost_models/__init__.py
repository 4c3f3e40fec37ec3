"""Learned latency predictors: features, network models, few-shot transfer, metrics, safe persistence."""
