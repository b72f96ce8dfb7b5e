"""scripts/bench_scale.py (issue 26.5): its vectors are the ones it names, and it runs end to end (--smoke)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def test_the_blocks_are_bench_latent_vectors_and_rclip_scales_vectors() -> None:
    from bench import latent_vectors
    from bench_scale import latent_blocks, random_blocks

    n = 100_003  # two blocks
    assert np.array_equal(np.concatenate(list(latent_blocks(n, d=16))), latent_vectors(n, d=16))
    rng = np.random.default_rng(1000)  # rclip_scale.py: default_rng(N).normal(size=(N, 512)), unit rows
    whole = rng.normal(size=(1000, 512)).astype(np.float32)
    whole /= np.linalg.norm(whole, axis=1, keepdims=True)
    assert np.array_equal(np.concatenate(list(random_blocks(1000, block=300))), whole)


@pytest.mark.slow
def test_bench_scale_smoke(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_scale.py"), "--smoke", "--out", str(out), "--work", tmp_path],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    (size,) = res["sizes"]
    assert size["n"] == 500 and size["vector_index"] == "flat (exact)"
    for key in ("import_s", "cold_s", "warm_s", "cold_auto_s", "warm_auto_s", "bytes_per_image", "helper_rss_mb"):
        assert size[key] > 0, key
    assert size["warm_by_helper"] == 1 and size["helper_pid_same"]  # the warm round went through the helper
    assert size["recall10_texts"] == 1.0 and size["recall10_probes"] == 1.0  # an exact index below 100k
    assert f"| cold search, s | {size['cold_s']:.2f} |" in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["scale.json"]  # what it built is gone
