"""Benchmark: full `train` on a log (wall time, peak RSS) and `score` of 5,000 first invoices,
with the served forecast compared to the first-basket baseline model from the same run.

    .venv/bin/python bench/bench_train.py [--data PATH] [--out DIR]

Budgets (issue 3): train <= 90 s and <= 3 GB on a 2-core machine; score of 5,000 first invoices
<= 5 s. Exit code 1 if a budget is missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("/work/shared/data/online_retail_ii.parquet")
TRAIN_BUDGET_S, RSS_BUDGET_MB, SCORE_BUDGET_S = 90.0, 3072.0, 5.0


def bench_train(data: Path, out: Path) -> tuple[float, float]:
    """Run `python -m offline train` in a child process; (wall seconds, child peak RSS MB)."""
    cmd = [sys.executable, "-m", "offline", "train", "--data", str(data), "--out", str(out),
           "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, rss_mb


def bench_score(data: Path, out: Path, n: int = 5000) -> tuple[float, int]:
    """Seconds to score ``n`` first invoices with one `score_invoices` call (after loading)."""
    sys.path.insert(0, str(ROOT))
    import offline
    from offline.events import first_purchases, invoices_from_lines
    from offline.load import read_log

    bundle = offline.load_bundle(out)
    df = read_log(data)
    firsts = list(first_purchases(invoices_from_lines(df[df["customer_id"].notna()])).values())
    batch = (firsts * (n // max(len(firsts), 1) + 1))[:n]
    t0 = time.perf_counter()
    rows = bundle.score_invoices(batch)
    return time.perf_counter() - t0, len(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "bench")
    args = ap.parse_args()

    wall, rss = bench_train(args.data, args.out)
    score_s, n = bench_score(args.data, args.out)
    card = json.loads((args.out / "model_card.json").read_text())
    print(f"train: wall {wall:.1f} s (budget {TRAIN_BUDGET_S:.0f}), peak RSS {rss:.0f} MB "
          f"(budget {RSS_BUDGET_MB:.0f}); in-process training time {card['training_seconds']} s")
    print(f"score: {n} first invoices in {score_s:.2f} s (budget {SCORE_BUDGET_S:.0f})")
    print("steps:", ", ".join(f"{k} {v:.1f}s" for k, v in card["timings_seconds"].items()))
    cols = ("normalized_gini", "gini_lift", "repeat_auc", "decile_mape", "cohort_total_ratio")
    print(f"\n{'forecast on held-out cohort':40s}" + "".join(f"{c:>20s}" for c in cols))
    for name, m in card["forecast"]["variants_holdout"].items():
        print(f"{name:40s}" + "".join(f"{m[c]:20.3f}" for c in cols))
    served = card["classifiers"]["models"][card["classifiers"]["served"]]
    print(f"\nsegments: k={card['segments']['k']}, classifier {card['classifiers']['served']} "
          f"accuracy {served['accuracy']:.3f}, macro-F1 {served['macro_f1']:.3f}")
    print("targets:", json.dumps(card["targets"]))
    ok = wall <= TRAIN_BUDGET_S and rss <= RSS_BUDGET_MB and score_s <= SCORE_BUDGET_S
    print("budgets:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
