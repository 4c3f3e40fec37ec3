"""Hardware-aware architecture search: accuracy and latency objectives, algorithms, the loop."""
