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
    for key in (
        "model_only_fp32",
        "naive_fp32",
        "decode_only",
        "search_cold_s",
        "search_cached_query_s",
        "classify_one_s",
        "help_s",
        "noop_s",
    ):
        assert res[key] > 0, key
    assert res["noop_model_loaded"] is False
    assert res["serve_search"]["new_p50_ms"] > 0
    assert res[f"index_{res['auto_precision']}"]["steady_img_s"] > 0
    assert "| `mmcli --help`, s |" in proc.stdout
