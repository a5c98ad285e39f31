"""basketcast's offline job: load -> clean -> categorise -> segment -> features -> fit -> bundle.

``load_bundle`` is exported lazily so ``import offline`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Bundle", "BundleError", "load_bundle"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from offline import bundle

        return getattr(bundle, name)
    raise AttributeError(f"module 'offline' has no attribute {name!r}")
