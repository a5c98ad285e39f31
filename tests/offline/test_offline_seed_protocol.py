from __future__ import annotations

import pandas as pd
import pytest

from offline.load import normalise, read_log
from offline.seed_protocol import CLUSTER_COLS, SeedProtocolError, run_seed_protocol


def test_seed_protocol_on_slice(slice_path) -> None:
    result = run_seed_protocol(read_log(slice_path), progress=False)
    models = result["models"]
    for name in ("svc (linear)", "logistic_regression", "k_neighbors", "decision_tree",
                 "random_forest", "gradient_boosting", "soft vote (rf, gb, knn)"):
        assert 0 <= models[name]["accuracy"] <= 1, name
    assert any(v["is_ours"] for v in models.values())
    assert result["test_customers"] > 50
    assert len(CLUSTER_COLS) == 9


def test_seed_protocol_needs_its_period(tiny_raw: pd.DataFrame) -> None:
    with pytest.raises(SeedProtocolError, match="2011-10-01"):
        run_seed_protocol(normalise(tiny_raw), progress=False)
