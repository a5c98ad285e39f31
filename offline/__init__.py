"""basketcast's offline job: load -> clean -> categorise -> segment -> features -> fit -> bundle.

``load_bundle`` is exported lazily so ``import offline`` stays light.
"""

from __future__ import annotations

import os
from typing import Any

# OpenMP threads that busy-wait make scikit-learn (k-means, gradient boosting) several times
# slower on a machine whose cores are shared; passive waiting costs nothing when they are not.
# Takes effect only if set before the OpenMP runtime loads (the first scikit-learn import).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["Bundle", "BundleError", "load_bundle"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from offline import bundle

        return getattr(bundle, name)
    raise AttributeError(f"module 'offline' has no attribute {name!r}")
