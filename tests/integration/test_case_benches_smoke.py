"""The case benches run end to end at a toy size (their figures are not checked here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_deadlines_toy(capsys: pytest.CaptureFixture[str]) -> None:
    assert load("bench_deadlines").main(
        ["--engines", "sqlite", "--cases", "300", "--due", "20", "--lead", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "all 20 escalated" in out and "empty sweep" in out and "naive full scan" in out


def test_bench_naive_scheduler_toy(capsys: pytest.CaptureFixture[str]) -> None:
    assert load("bench_naive_scheduler").main(["--cases", "200"]) == 0
    assert "ratio" in capsys.readouterr().out


def test_bench_notify_toy(capsys: pytest.CaptureFixture[str]) -> None:
    assert load("bench_notify").main(["--cases", "5", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "rows/event" in out and "replied" in out and "baseline" in out


def test_bench_open311_toy(capsys: pytest.CaptureFixture[str]) -> None:
    assert load("bench_open311").main(["--posts", "40", "--concurrency", "2"]) == 0
    out = capsys.readouterr().out
    assert "40 filed, 40 routed" in out and "Open311 POST" in out and "Telegram webhook" in out
