"""``python -m device_agents --workdir DIR``: start the agent on stdin/stdout."""
import os
import sys

# The reference kernel and runtimes are timed single-threaded unless asked otherwise;
# BLAS thread pools must be fixed before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from device_agents.agent import main  # noqa: E402

sys.exit(main())
