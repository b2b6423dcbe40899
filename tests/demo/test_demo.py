"""The README's main job: examples/demo.py trains, checkpoints, resumes exactly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
SMALL = [
    "--epochs",
    "3",
    "--lora-epochs",
    "2",
    "--hidden",
    "64",
    "--no-progress",
    "--min-accuracy",
    "0.9",
]


def _run(out: Path, *extra: str) -> str:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--out", str(out), *SMALL, *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _final(stdout: str) -> tuple[str, str]:
    accuracy = re.search(r"final test accuracy: ([0-9.]+)", stdout)
    checksum = re.search(r"state checksum: ([0-9.]+)", stdout)
    assert accuracy and checksum, stdout
    return accuracy.group(1), checksum.group(1)


@pytest.mark.slow
def test_demo_trains_and_resumes_exactly(tmp_path: Path) -> None:
    straight = _run(tmp_path / "straight")
    accuracy, checksum = _final(straight)
    assert float(accuracy) >= 0.9
    for name in ("training_curve.png", "model.html", "checkpoint/progress.json"):
        assert (tmp_path / "straight" / name).exists(), name
    html = (tmp_path / "straight" / "model.html").read_text()
    assert "LoraParam" in html and "BatchNorm" in html

    # Interrupted twice (once in each phase), then resumed: same final state.
    first = _run(tmp_path / "resumed", "--stop-after", "2")
    assert "stopped early" in first
    second = _run(tmp_path / "resumed", "--resume", "--stop-after", "2")
    assert "resumed from" in second and "phase pretrain, epoch 2" in second
    third = _run(tmp_path / "resumed", "--resume")
    assert "phase lora, epoch 1" in third
    assert _final(third) == (accuracy, checksum)
