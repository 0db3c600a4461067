"""Retry delays: capped, jittered exponential backoff.

Dependency-free on purpose: the poller, the north link and the client (which imports
nothing else of the service) all wait with it.
"""

from __future__ import annotations

import random


def backoff(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after the n-th consecutive failure (n from 1): doubling from base,
    capped, with ±20 % jitter so that many waiters failing together do not retry in
    lockstep. Never more than ``cap``."""
    delay: float = min(cap, base * 2 ** min(max(0, failures - 1), 30))
    return min(cap, delay * random.uniform(0.8, 1.2))
