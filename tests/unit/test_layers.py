"""The layer rule: arrows point down (webhooks → bot → core), checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAT_LIBS = {"telegram", "aiogram", "wechatpy"}
WEB = {"fastapi", "starlette", "uvicorn"}


def imports_of(package: str) -> dict[str, set[str]]:
    """Top-level module names each file of the package imports (at any depth in the file)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


def offenders(package: str, forbidden: set[str]) -> list[str]:
    return sorted(f"{f}: {sorted(n & forbidden)}" for f, n in imports_of(package).items()
                  if n & forbidden)


def test_core_imports_no_chat_library_web_framework_or_upper_layer() -> None:
    assert offenders("core", CHAT_LIBS | WEB | {"bot", "webhooks", "linzhang"}) == []


def test_flows_make_no_platform_call() -> None:
    assert offenders("bot/flows", CHAT_LIBS | WEB | {"webhooks", "httpx", "linzhang"}) == []


def test_bot_does_not_reach_up_into_webhooks() -> None:
    assert offenders("bot", WEB | {"webhooks", "linzhang"}) == []


def test_the_rule_detects_a_violation(tmp_path: Path) -> None:
    # The checker itself must be able to fail.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from telegram import Bot\n", encoding="utf-8")
    names = set()
    for node in ast.walk(ast.parse(bad.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    assert names & CHAT_LIBS == {"telegram"}


def test_nothing_happens_at_import_time(tmp_path: Path) -> None:
    """Importing every module opens no database, writes no file and starts no thread."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for pkg in ("core", "bot", "webhooks", "linzhang")
        for p in (ROOT / pkg).rglob("*.py")
        if "migrations" not in p.parts and p.name != "__main__.py"
    )
    code = (
        "import importlib, threading, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(threading.active_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert list(tmp_path.iterdir()) == []
