"""The benchmark script runs, and nu_xp does exactly the hand-written network's work (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_runs_and_matches_hand_written_numpy(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "run.py"),
        "--workloads",
        "xor_tiny,mlp_mid",
        "--repeats",
        "1",
        "--pause",
        "0",
        "--no-sklearn",
        "--no-torch",
        "--json",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    results = {r["workload"]: r for r in json.loads(out.read_text())["results"]}
    for name in ("xor_tiny", "mlp_mid"):
        r = results[name]
        assert set(r["median_s"]) == {"nu_xp", "hand"}
        assert r["ratios"]["nu_xp/hand"] > 0
        assert r["final_loss"]["nu_xp"] == pytest.approx(r["final_loss"]["hand"], rel=1e-4)
