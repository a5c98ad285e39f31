"""The demo: its bookkeeping (what it counts and reports from the topics it watches), and one
whole run of `basketcast demo` on a slice of the shipped log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from offline.events import is_first_purchase_candidate
from stream.demo import Demo, Tally, _observe, _percentile
from stream.services import free_port
from stream.settings import Settings

S = Settings.from_env({})


def _invoice(invoice_id: str, customer: str | None) -> bytes:
    return json.dumps({
        "invoice_id": invoice_id, "customer_id": customer, "country": "France",
        "invoiced_at": "2010-01-01T10:00:00",
        "lines": [{"stock_code": "1", "description": "x", "quantity": 2, "unit_price": 1.5}],
    }).encode()


def _score(event_id: str, invoice_id: str) -> bytes:
    return json.dumps({
        "event_id": event_id, "customer_id": "1", "invoice_id": invoice_id, "segment": 0,
        "segment_label": "small", "p_repeat": 0.5, "expected_orders": 1.0,
        "expected_spend": 10.0,
    }).encode()


def test_counts_invoices_guests_scores_dead_letters_and_drift():
    t = Tally()
    _observe(t, S, S.topic_invoices, _invoice("A1", "1"), 1_000)
    _observe(t, S, S.topic_invoices, _invoice("A2", None), 1_010)
    _observe(t, S, S.topic_invoices, b"{not json", 1_020)
    _observe(t, S, S.topic_scores, _score("e1", "A1"), 1_050)
    _observe(t, S, S.topic_scores, _score("e1", "A1"), 1_500)  # re-delivery
    _observe(t, S, S.topic_dlq, b"{}", 1_060)
    _observe(t, S, S.topic_drift, b"{}", 1_070)
    assert (t.invoices, t.guests, len(t.scored), t.duplicates) == (3, 1, 1, 1)
    assert (t.dead_letters, t.drift_events) == (1, 1)
    assert t.latencies_ms == [50]
    assert t.first_baskets["A1"] == ("France", 3.0, 1)


def test_percentile_picks_the_rank():
    values = [float(v) for v in range(1, 101)]
    assert _percentile(values, 0.5) == 51.0
    assert _percentile(values, 0.99) == 100.0
    assert _percentile([], 0.5) != _percentile([], 0.5)  # nan


def test_summary_names_every_figure(tmp_path: Path):
    args = Namespace(data=tmp_path / "log.parquet", model=tmp_path, speed=0.0, limit=None,
                     since=None, until=None, drain_timeout=1.0, log_dir=str(tmp_path))
    demo = Demo(args)
    demo.replay_output = []
    t = Tally()
    for i in range(10):
        _observe(t, demo.settings, demo.settings.topic_invoices, _invoice(f"A{i}", "1"), 0)
    _observe(t, demo.settings, demo.settings.topic_scores, _score("e1", "A1"), 2_000)
    text = demo.summary(t, 3.0)
    for figure in ("invoices replayed", "first purchases scored", "dead letters", "guest",
                   "throughput", "p50", "p99", "drift events", "report"):
        assert figure in text
    assert " 5 invoices/s" in text  # 10 invoices, first produce to last score 2 s


def test_each_run_has_its_own_namespace(tmp_path: Path):
    args = Namespace(data=tmp_path, model=tmp_path, speed=0.0, limit=None, since=None,
                     until=None, drain_timeout=1.0, log_dir=str(tmp_path))
    a, b = Demo(args), Demo(args)
    assert a.settings.topic_invoices != b.settings.topic_invoices
    assert a.settings.redis_prefix != b.settings.redis_prefix
    assert a.settings.app_id != b.settings.app_id


DEMO_LIMIT = 2_000


@pytest.mark.integration
def test_demo_scores_every_new_customer_and_leaves_nothing_behind(
        tmp_path: Path, kafka_bootstrap: str, redis_url: str, bundle_dir: Path,
        shipped_log: Path, log_events: list) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url,
           "BASKETCAST_WEB_PORT": str(free_port()),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo", "--data", str(shipped_log), "--model",
         str(bundle_dir), "--limit", str(DEMO_LIMIT), "--log-dir", str(tmp_path / "logs")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "worker ready" in out
    new_customers = {ev.customer_id for ev in log_events[:DEMO_LIMIT]
                     if ev.customer_id is not None and is_first_purchase_candidate(ev)}
    figures = {name: int(value.replace(",", "")) for name, value in re.findall(
        r"^  (invoices replayed|first purchases scored|dead letters)\s+([\d,]+)", out, re.M)}
    assert figures == {"invoices replayed": DEMO_LIMIT,
                       "first purchases scored": len(new_customers), "dead letters": 0}
    # the worker creates the topics and waits for their leaders before it consumes; the
    # demo's clients start once it does: no "topic not found" errors in either
    worker_log = (tmp_path / "logs" / "worker.log").read_text()
    assert "event=worker_started" in worker_log
    assert "not found in cluster metadata" not in out + worker_log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]  # no Faust data directory


def _demo_with_worker(tmp_path: Path, code: str) -> Demo:
    demo = Demo(Namespace(model=tmp_path, speed=0.0))
    demo.worker_log = tmp_path / "worker.log"
    demo.procs.append(subprocess.Popen([sys.executable, "-c", code]))
    return demo


def test_waiting_for_a_worker_that_exits_says_so(tmp_path: Path) -> None:
    demo = _demo_with_worker(tmp_path, "raise SystemExit(3)")
    with pytest.raises(RuntimeError, match=r"exited with code 3; see .*worker.log"):
        demo.wait_until_ready(timeout=30)


def test_waiting_for_a_worker_that_never_answers_times_out(tmp_path: Path) -> None:
    demo = _demo_with_worker(tmp_path, "import time; time.sleep(30)")
    try:
        with pytest.raises(RuntimeError, match=r"not ready after 1 s \(http://127.0.0.1:\d+"):
            demo.wait_until_ready(timeout=1)
    finally:
        demo.procs[0].kill()
        demo.procs[0].wait()
