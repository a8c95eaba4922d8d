"""The layer rule, checked on the source: arrows point down (webhooks → bot → core), core/
writes no sentences (they live in bot/flows/texts.py), and one platform's handler never
imports another's."""

from __future__ import annotations

import ast
import contextlib
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from bot.flows.texts import TEXTS

ROOT = Path(__file__).resolve().parents[2]
CHAT_LIBS = {"telegram", "aiogram", "wechatpy", "tencentcloud"}
WEB = {"fastapi", "starlette", "uvicorn"}
# Han characters, CJK punctuation (、。「」) and full-width forms (，：（）).
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")

# Where core/ may hold Chinese string literals: a path (a file, or a folder ending in "/")
# maps to None for the whole file, or to the module-level names (constants or functions)
# whose values may hold it.
CJK_ALLOWED: dict[str, frozenset[str] | None] = {
    "core/migrations/": None,  # history: a migration never changes once shipped
    "core/demo_seed.py": None,  # demo data: the reports the demo city's residents made
    # Glossary: the words an import file may use for levels and roles, and the labels the
    # dashboard, the exports and the bot show for them.
    "core/hierarchy/tree.py": frozenset({"LEVEL_ALIASES", "ROLE_ALIASES", "ROLE_LABEL_ZH",
                                         "LEVEL_LABEL_ZH", "LEVEL_NAMES_ZH"}),
    # Glossary: the Chinese column headers an import file may use (FORMATS.md).
    "core/hierarchy/readers.py": frozenset({"COLUMNS"}),
    # Glossary: the words a categories file and the working calendar file may use for yes/no,
    # tiers, holidays and make-up working days.
    "core/hierarchy/import_categories.py": frozenset({"YES", "NO", "ROUTE_ROLES_ZH"}),
    "core/hierarchy/import_routing.py": frozenset({"ROLE_WORDS", "SEPARATORS"}),
    "core/cases/worktime.py": frozenset({"HOLIDAY_WORDS", "WORKDAY_WORDS",
                                                     "HEADER_WORDS"}),
    # Glossary: a case's states and events as the dashboard and /case name them.
    "core/cases/model.py": frozenset({"STATE_LABEL_ZH"}),
    "core/cases/ops.py": frozenset({"EVENT_VERB_ZH"}),
    # Glossary: the words /away may use for days and dates (3天, 12月5日).
    "core/cases/away.py": frozenset({"DAYS_RE", "DATE_RE"}),
    # Data: a campaign's default outcomes (stored with each campaign, its starter may name
    # others, like categories), a notice relay's (已转达/不在家/已搬离), and the two whose
    # wording feeds the registry back.
    "core/campaigns/model.py": frozenset({"DEFAULT_OUTCOMES", "RELAY_OUTCOMES", "MOVED",
                                          "NEWCOMER"}),
    # Data, not wording: the filler words duplicate suggestion drops before comparing.
    "core/cases/duplicates.py": frozenset({"_STOP_WORDS"}),
    # Data: the stored text of a report that had only a photo, voice or place.
    "core/cases/services.py": frozenset({"NO_WORDS"}),
    # Data, not wording: what purge writes over a resident's words, and the full-width
    # characters and house-number units the masking rule reads.
    "core/privacy.py": frozenset({"PLACEHOLDER", "_FOLD", "_UNIT", "_STRONG_UNIT", "_RUN_END",
                                  "_RUN_START"}),
    # The operators' stall alert (both languages in one message to the root admins): it goes
    # with the sweep's notices once bot/notify renders what the scheduler's jobs send.
}

# Handler → another platform's handler imports allowed (none: the one outbox dispatcher in
# bot/dispatcher/ replaced the per-platform loops).
CROSS_ALLOWED: frozenset[tuple[str, str]] = frozenset()

ERROR_TYPES = {"DomainError", "NotFound", "PermissionDenied", "InvalidInput", "Conflict",
               "StaleAction", "InvalidTransition", "MediaRejected", "MediaStoreUnavailable",
               "TooManyAttempts"}
KEY = re.compile(r"[a-z][a-z0-9_.]*")
FAMILIES = ("state.", "event.", "role.", "verb.")


# ---------------------------------------------------------------------------- the checkers

def modules_imported(path: Path) -> set[str]:
    """Full module names a file imports (at any depth in the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def offenders(package: str, forbidden: set[str], *, root: Path = ROOT) -> list[str]:
    """Files of the package that import a top-level module in `forbidden`."""
    out = []
    for path in sorted((root / package).rglob("*.py")):
        bad = {n.split(".")[0] for n in modules_imported(path)} & forbidden
        if bad:
            out.append(f"{path.relative_to(root)}: {sorted(bad)}")
    return out


def handler_cross_imports(*, root: Path = ROOT,
                          allowed: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """Imports from one platform's handler package (bot/handlers/X/) into another's; the
    modules right under bot/handlers/ are shared helpers and free to use."""
    base = root / "bot" / "handlers"
    platforms = {p.name for p in base.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    out = []
    for own in sorted(platforms):
        for path in sorted((base / own).rglob("*.py")):
            rel = str(path.relative_to(root))
            for name in sorted(modules_imported(path)):
                parts = name.split(".")
                if (parts[:2] == ["bot", "handlers"] and len(parts) > 2 and parts[2] != own
                        and parts[2] in platforms and (rel, name) not in allowed
                        and not any((rel, a) in allowed for a in _prefixes(name))):
                    out.append(f"{rel}: imports {name}")
    return out


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _assigned_names(stmt: ast.stmt) -> set[str]:
    """The module-level names a statement binds (a constant, or a function)."""
    if isinstance(stmt, ast.FunctionDef):
        return {stmt.name}
    if isinstance(stmt, ast.Assign):
        return {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id}
    return set()


def cjk_literals(package: str, *, root: Path = ROOT,
                 allowed: dict[str, frozenset[str] | None] | None = None) -> list[str]:
    """`file:line: text` for each string literal with Chinese in it (docstrings and comments
    aside) outside the allowlist."""
    allowed = allowed or {}
    out = []
    for path in sorted((root / package).rglob("*.py")):
        rel = str(path.relative_to(root))
        rule = next((v for k, v in allowed.items()
                     if rel == k or (k.endswith("/") and rel.startswith(k))), frozenset())
        if rule is None:
            continue
        for names, hits in _statement_literals(rel, path.read_text(encoding="utf-8")):
            if not names & rule:
                out.extend(hits)
    return out


@cache
def _statement_literals(rel: str, text: str) -> tuple[tuple[frozenset[str], tuple[str, ...]], ...]:
    """Per module-level statement: the names it binds and its Chinese literals. Cached by the
    file's text: the allowlist test asks again for each of its entries."""
    tree = ast.parse(text, filename=rel)
    skip = _docstrings(tree)
    assert isinstance(tree, ast.Module)
    return tuple(
        (frozenset(_assigned_names(stmt)),
         tuple(f"{rel}:{node.lineno}: {node.value[:30]!r}" for node in ast.walk(stmt)
               if isinstance(node, ast.Constant) and isinstance(node.value, str)
               and id(node) not in skip and CJK.search(node.value)))
        for stmt in tree.body)


def error_calls(package: str, *, root: Path = ROOT) -> list[tuple[str, str | None]]:
    """(`file:line`, message key or None) for each domain error or phrase built in the
    package, and each refusal reason or attempts key: the key must be written out (a literal,
    or a module constant holding one), or come in as the enclosing function's parameter;
    `phrase(f"state.{...}")` names a family of keys (checked apart)."""
    out: list[tuple[str, str | None]] = []
    for path in sorted((root / package).rglob("*.py")):
        rel = str(path.relative_to(root))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        consts: dict[str, Any] = {}
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign):
                with contextlib.suppress(ValueError):
                    for name in _assigned_names(stmt):
                        consts[name] = ast.literal_eval(stmt.value)

        def visit(node: ast.AST, params: frozenset[str], rel: str = rel,
                  consts: dict[str, Any] = consts) -> None:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                a = node.args
                params = frozenset(x.arg for x in a.posonlyargs + a.args + a.kwonlyargs)
            for arg in _key_args(node):
                out.extend((f"{rel}:{node.lineno}", k) for k in _keys_of(arg, consts, params))
            for child in ast.iter_child_nodes(node):
                visit(child, params)

        visit(tree, frozenset())
    return out


def _key_args(node: ast.AST) -> list[ast.expr]:
    if not isinstance(node, ast.Call):
        return []
    name = node.func.id if isinstance(node.func, ast.Name) else (
        node.func.attr if isinstance(node.func, ast.Attribute) else "")
    if name in ERROR_TYPES or name == "phrase":
        return node.args[:1]
    wanted = {"refuse": "reason", "check": "key"}.get(name)
    return [k.value for k in node.keywords if wanted and k.arg == wanted]


def _keys_of(arg: ast.expr, consts: dict[str, Any], params: frozenset[str]) -> list[str | None]:
    if isinstance(arg, ast.IfExp):
        return _keys_of(arg.body, consts, params) + _keys_of(arg.orelse, consts, params)
    if isinstance(arg, ast.Name) and arg.id in params:
        return []  # passed through: its caller names the key
    if (isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant)
            and str(arg.values[0].value) in FAMILIES):
        return []
    if (isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name)
            and isinstance(consts.get(arg.value.id), dict)):
        return [v if isinstance(v, str) and KEY.fullmatch(v) else None
                for v in consts[arg.value.id].values()]  # a table of keys
    value = (arg.value if isinstance(arg, ast.Constant) else
             consts.get(arg.id) if isinstance(arg, ast.Name) else None)
    return [value if isinstance(value, str) and KEY.fullmatch(value) else None]


# ---------------------------------------------------------------------------- the rules

def test_core_imports_no_chat_library_web_framework_or_upper_layer() -> None:
    assert offenders("core", CHAT_LIBS | WEB | {"bot", "webhooks", "linzhang"}) == []


def test_flows_make_no_platform_call() -> None:
    assert offenders("bot/flows", CHAT_LIBS | WEB | {"webhooks", "httpx", "linzhang"}) == []


def test_bot_does_not_reach_up_into_webhooks() -> None:
    assert offenders("bot", WEB | {"webhooks", "linzhang"}) == []


def test_only_the_sms_handler_imports_the_sms_sdk() -> None:
    found = [o for pkg in ("bot", "webhooks", "linzhang") for o in offenders(pkg, {"tencentcloud"})]
    assert [o for o in found if not o.startswith("bot/handlers/sms/")] == []


def test_no_platform_handler_imports_another() -> None:
    assert handler_cross_imports(allowed=CROSS_ALLOWED) == []


def test_core_writes_no_chinese_outside_the_allowlist() -> None:
    assert cjk_literals("core", allowed=CJK_ALLOWED) == []


def test_every_allowlist_entry_is_still_needed() -> None:
    # An entry whose file lost its Chinese (or a name that no longer holds any) goes.
    for path, names in CJK_ALLOWED.items():
        assert (ROOT / path).exists(), path
        if path.endswith("/"):
            continue
        for name in sorted(names or {""}):
            rest = {k: v for k, v in CJK_ALLOWED.items() if k != path}
            if names is not None:
                rest[path] = names - {name}
            assert cjk_literals(path.rsplit("/", 1)[0], allowed=rest), (path, name)


def test_core_errors_carry_a_key_with_a_sentence_in_every_language() -> None:
    calls = [c for pkg in ("core", "bot", "webhooks") for c in error_calls(pkg)]
    assert [where for where, key in calls if key is None] == []
    keys = {key for _, key in calls if key}
    assert len(keys) > 50
    assert sorted(keys - TEXTS["zh"].keys()) == []
    assert sorted(keys - TEXTS["en"].keys()) == []


def test_every_state_event_role_and_action_has_its_words() -> None:
    from core.cases.model import State
    from core.cases.ops import EVENT_VERB_ZH
    from core.hierarchy.model import Role

    doing: set[str] = set()
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                # The verb a refusal names: require_state's last argument, and the action
                # that _begin (not_holder) and _say (require_state) are given.
                said = (node.args[-1:] if name == "require_state" else
                        [k.value for k in node.keywords if k.arg == "action"]
                        if name in ("_begin", "_say") else [])
                doing |= {a.value for a in said if isinstance(a, ast.Constant)}
    wanted = ({f"state.{s.value}" for s in State} | {f"event.{k}" for k in EVENT_VERB_ZH}
              | {f"role.{r.value}" for r in Role} | {f"verb.{d}" for d in doing})
    assert {"verb.accept", "verb.merge_target", "verb.reopen"} <= wanted
    for lang in ("zh", "en"):
        assert sorted(wanted - TEXTS[lang].keys()) == [], lang


def test_the_two_languages_name_the_same_parameters() -> None:
    fields = re.compile(r"\{(\w+)")
    for key, zh in TEXTS["zh"].items():
        if key in TEXTS["en"]:
            assert set(fields.findall(zh)) == set(fields.findall(TEXTS["en"][key])), key


# ---------------------------------------------------------------------------- the checkers can fail

def test_the_checkers_find_what_a_bad_package_does(tmp_path: Path) -> None:
    def write(rel: str, text: str) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    write("core/__init__.py", "")
    write("core/cases.py", '"""工单 (a docstring may say it)."""\n'
                           "# 注释 too\n"
                           "def f():\n"
                           "    from telegram import Bot\n"
                           "    raise NotFound(f'没有工单#{1}')\n"
                           "LABELS = {'open': '待受理'}\n"
                           "def g():\n"
                           "    raise NotFound('case_not_found', case=1)\n")
    write("bot/handlers/__init__.py", "")
    write("bot/handlers/shared.py", "")
    for platform in ("telegram", "wecom"):
        write(f"bot/handlers/{platform}/__init__.py", "")
    write("bot/handlers/wecom/inbound.py", "from bot.handlers.telegram.api import send\n"
                                           "from bot.handlers.shared import x\n"
                                           "from bot.handlers.wecom import parse\n")

    assert offenders("core", CHAT_LIBS, root=tmp_path) == ["core/cases.py: ['telegram']"]
    assert cjk_literals("core", root=tmp_path) == ["core/cases.py:5: '没有工单#'",
                                                  "core/cases.py:6: '待受理'"]
    assert cjk_literals("core", root=tmp_path,
                        allowed={"core/cases.py": frozenset({"LABELS"})}) == [
        "core/cases.py:5: '没有工单#'"]
    assert cjk_literals("core", root=tmp_path, allowed={"core/": None}) == []
    assert error_calls("core", root=tmp_path) == [("core/cases.py:5", None),
                                                  ("core/cases.py:8", "case_not_found")]
    found = handler_cross_imports(root=tmp_path)
    assert found == ["bot/handlers/wecom/inbound.py: imports bot.handlers.telegram.api",
                     "bot/handlers/wecom/inbound.py: imports bot.handlers.telegram.api.send"]
    allowed = frozenset({("bot/handlers/wecom/inbound.py", "bot.handlers.telegram.api")})
    assert handler_cross_imports(root=tmp_path, allowed=allowed) == []


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
