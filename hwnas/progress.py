"""Progress bars on stderr: shown only for work that takes over a second, never with --json."""
from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def bar(total: int | None, desc: str, quiet: bool = False, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that appears after 1 s, with ETA; disabled when ``quiet``."""
    return tqdm(total=total, desc=desc, file=sys.stderr, delay=1.0, disable=quiet,
                dynamic_ncols=True, leave=False, **kwargs)
