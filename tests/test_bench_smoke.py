"""The benchmark harness runs end to end on a tiny corpus (it measures nothing at this size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,  # (several times the unloaded run: it shares the machine in CI)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    rates = ("model_only_fp32", "naive_fp32", "decode_only")  # images/s
    seconds = ("search_cold_s", "search_cached_query_s", "classify_one_s", "help_s", "noop_s")
    for key in rates:
        assert isinstance(res[key], float) and 0.1 < res[key] < 1e5, (key, res[key])
    for key in seconds:
        assert isinstance(res[key], float) and 0.01 < res[key] < 120, (key, res[key])
    assert res["noop_model_loaded"] is False
    assert 0 < res["serve_search"]["new_p50_ms"] < 60_000, res["serve_search"]
    index = res[f"index_{res['auto_precision']}"]
    steady = index["steady_img_s"]  # (None: 2N files took no longer than N, as a tiny corpus may)
    assert (steady is None or 0.1 < steady < 1e5) and 0 < index["seconds"] < 600, index
    latency = [v for k, v in res.items() if k.startswith("search_") and isinstance(v, dict)]
    assert latency, "no search latency measured"
    for got in latency:
        assert got["exact_recall10"] == 1.0 and 0 <= got["approx_recall10"] <= 1.0, got
    # the table printed (and pasted into the README) shows the figures the JSON holds
    assert f"| model only, fp32, images/s | {res['model_only_fp32']:.1f} | |" in proc.stdout
    assert f"| decoding only (parallel, draft), images/s | {res['decode_only']:.1f} | |" in proc.stdout
    assert (
        f"| naive loop (PIL + open_clip preprocess, fp32), images/s | {res['naive_fp32']:.1f} | 1.00x |" in proc.stdout
    )
    assert "| `mmcli --help`, s |" in proc.stdout
