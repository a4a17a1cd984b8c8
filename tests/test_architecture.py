"""The shape of the code (DESIGN §3), checked on whole import paths.

Every import counts, including those inside functions and under `TYPE_CHECKING`: an
import moved into a function to break a cycle is still the cycle. The checks run on
the real tree and, to prove each can fail, on small trees planted in a temporary folder.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What pure rules may not touch: anything that does I/O or reads a clock.
IO_MODULES = frozenset(
    {
        "os",
        "socket",
        "sqlite3",
        "sqlite_utils",
        "serial",
        "evdev",
        "gpiozero",
        "escpos",
        "aiohttp",
        "asyncio",
        "threading",
        "time",
        "subprocess",
        "pathlib",
        "paho",
        "psycopg",
        "shutil",
    }
)

# (importer prefix, forbidden prefixes, why). A prefix matches a module and everything
# below it, so `daemon.rules` covers `daemon.rules.lane.sale` too.
FORBIDDEN: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("daemon", ("simulators",), "the daemon never imports simulators"),
    (
        "daemon.rules",
        tuple(
            p
            for p in (
                "daemon.drivers",
                "daemon.ledger",
                "daemon.lane",
                "daemon.config",
                "daemon.replication",
                "daemon.hq",
                "daemon.cli",
                "daemon.doctor",
                "daemon.provision",
                "daemon.bench",
                *IO_MODULES,
            )
        ),
        "rules are pure decisions: no I/O, no ledger, no devices",
    ),
    (
        "daemon.ledger",
        (
            "daemon.drivers",
            "daemon.lane",
            "daemon.config",
            "daemon.replication",
            "daemon.hq",
            "daemon.cli",
            "daemon.doctor",
            "daemon.provision",
            "daemon.bench",
        ),
        "the ledger stands on the rules' types only",
    ),
    (
        "daemon.drivers",
        (
            "daemon.ledger",
            "daemon.lane",
            "daemon.replication",
            "daemon.hq",
            "daemon.cli",
            "daemon.doctor",
            "daemon.provision",
        ),
        "drivers turn bytes into domain events and back; they know nothing above them",
    ),
    (
        "daemon.config",
        (
            "daemon.lane",
            "daemon.ledger",
            "daemon.replication",
            "daemon.hq",
            "daemon.cli",
            "daemon.doctor",
            "daemon.provision",
        ),
        "configuration models are read by everyone and read no one above them",
    ),
    ("daemon.replication", ("daemon.lane", "daemon.cli", "daemon.hq"), "replication is a link"),
    ("daemon.lane", ("daemon.cli", "daemon.hq", "daemon.doctor", "daemon.provision"), "lane"),
)

# The ledger's own tables; SQL on them belongs in `daemon.ledger` (and HQ, which keeps
# the same tables for the whole chain).
LEDGER_TABLES = (
    "activity",
    "documents",
    "events",
    "lane_log",
    "meta",
    "products",
    "replication_cursor",
    "replication_state",
    "unit_counts",
    "units",
)
SQL_OWNERS = ("daemon.ledger", "daemon.hq")
# The benchmark's floors are, by design, the same SQL without posd (DESIGN §4).
SQL_ALLOWED = ("daemon.bench",)
_SQL = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(?P<table>" + "|".join(LEDGER_TABLES) + r")\b"
    r"|\bPRAGMA\b",
    re.IGNORECASE,
)
_SQL_VERB = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|PRAGMA)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path


def modules(root: Path, packages: tuple[str, ...] = ("daemon",)) -> list[Module]:
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append(Module(".".join(parts), path))
    return found


def imports_of(module: Module, known: frozenset[str] = frozenset()) -> set[str]:
    """Every module `module` imports, anywhere in its file, as whole dotted paths.

    `from package import sub` imports the module `package.sub` when there is one (then
    `package` itself only as every import does: its `__init__` runs first)."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"))
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = {f"{base}.{alias.name}" for alias in node.names}
            submodules = names & known
            found |= submodules if submodules == names else {base, *names}
    return found


def graph(root: Path, packages: tuple[str, ...] = ("daemon",)) -> dict[str, set[str]]:
    known = {m.name: m for m in modules(root, packages)}
    edges: dict[str, set[str]] = {}
    names = frozenset(known)
    for name, module in known.items():
        edges[name] = {i for i in imports_of(module, names) if i in known and i != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for after in sorted(edges.get(node, ())):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in on_stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_imports(root: Path, packages: tuple[str, ...] = ("daemon",)) -> list[str]:
    wrong = []
    for module in modules(root, packages):
        imported = imports_of(module)
        for importer, banned, why in FORBIDDEN:
            if not _under(module.name, importer):
                continue
            for name in sorted(imported):
                if any(_under(name, b) for b in banned):
                    wrong.append(f"{module.name} imports {name} ({why})")
    return wrong


def _texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string literal but docstrings; an f-string as one text, `?` for its holes."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        documented = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        body = getattr(node, "body", None)
        if isinstance(node, documented) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))
        if isinstance(node, ast.JoinedStr):
            skip |= {id(value) for value in node.values}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            parts = (v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
            yield node.lineno, "".join(str(p) for p in parts)


def ledger_sql_outside(root: Path, packages: tuple[str, ...] = ("daemon",)) -> list[str]:
    """SQL on the ledger's tables (or a PRAGMA on its connection) outside its owners."""
    wrong = []
    for module in modules(root, packages):
        if any(_under(module.name, p) for p in (*SQL_OWNERS, *SQL_ALLOWED)):
            continue
        tree = ast.parse(module.path.read_text(encoding="utf-8"))
        for line, text in sorted(_texts(tree)):
            if _SQL_VERB.search(text) and _SQL.search(text):
                wrong.append(f"{module.name}:{line}: {text.strip()[:70]!r}")
    return wrong


# ------------------------------------------------------------------ the real tree


def test_no_import_cycle_anywhere() -> None:
    found = cycles(graph(ROOT, ("daemon", "simulators")))
    assert not found, "import cycles (cut each by moving the shared part down):\n" + "\n".join(
        " <-> ".join(group) for group in found
    )


def test_imports_point_one_way() -> None:
    wrong = forbidden_imports(ROOT, ("daemon",))
    assert not wrong, "\n".join(wrong)


def test_no_ledger_sql_outside_the_ledger_and_hq() -> None:
    wrong = ledger_sql_outside(ROOT)
    assert not wrong, "SQL on ledger tables belongs in daemon.ledger:\n" + "\n".join(wrong)


def test_the_top_of_daemon_is_packages_and_a_handful_of_modules() -> None:
    top = ROOT / "daemon"
    loose = sorted(p.name for p in top.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 6, f"daemon/ has {len(loose)} loose modules: {loose}"


def colliding_class_names(
    root: Path, packages: tuple[str, ...] = ("daemon",)
) -> dict[str, list[str]]:
    """Public top-level class names defined in more than one module."""
    where: dict[str, list[str]] = {}
    for module in modules(root, packages):
        tree = ast.parse(module.path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(module.name)
    return {name: found for name, found in where.items() if len(found) > 1}


# Names that still collide, each with where the second one should go. Empty is the goal.
KNOWN_COLLISIONS = {"Finding": "daemon.ledger.audit's is an audit finding"}


def test_class_names_do_not_collide_across_modules() -> None:
    found = {n: m for n, m in colliding_class_names(ROOT).items() if n not in KNOWN_COLLISIONS}
    assert not found, "one name, two classes (rename one of each):\n" + "\n".join(
        f"{name}: {', '.join(mods)}" for name, mods in sorted(found.items())
    )


# ------------------------------------------------- each check fails when it should


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {p.parent for p in root.rglob("*.py")}:
        (folder / "__init__.py").touch()
    return root


def test_a_cycle_hidden_inside_a_function_is_found(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "daemon/doctor/checkup.py": "def run():\n    from daemon.doctor.broker import x\n",
            "daemon/doctor/broker.py": "from daemon.doctor.checkup import run\nx = 1\n",
            "daemon/doctor/system.py": "from daemon.doctor import checkup\n",
        },
    )
    assert cycles(graph(root)) == [["daemon.doctor.broker", "daemon.doctor.checkup"]]


def test_a_sub_package_of_the_rules_importing_the_ledger_is_found(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "daemon/rules/lane/sale.py": "import sqlite3\nfrom daemon.ledger.store import x\n",
            "daemon/ledger/store.py": "from daemon.lane.loop import Lane\n",
            "daemon/drivers/display.py": "from ..ledger import store\n",
        },
    )
    wrong = forbidden_imports(root)
    assert any(w.startswith("daemon.rules.lane.sale imports sqlite3") for w in wrong)
    assert any(w.startswith("daemon.rules.lane.sale imports daemon.ledger.store") for w in wrong)
    assert any(w.startswith("daemon.ledger.store imports daemon.lane.loop") for w in wrong)
    assert any(w.startswith("daemon.drivers.display imports daemon.ledger") for w in wrong)


def test_ledger_sql_in_the_lane_is_found_and_in_the_ledger_is_not(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "daemon/lane/ops.py": (
                '"""SELECT body FROM events is how it used to be done."""\n'
                "def f(db, n):\n"
                "    db.execute(\"SELECT status FROM documents WHERE type = 'count'\")\n"
                '    db.execute(f"UPDATE units SET state = {n}")\n'
                '    return "selected from the events of the day"\n'
            ),
            "daemon/ledger/stocktake.py": 'Q = "SELECT status FROM documents"\n',
        },
    )
    wrong = ledger_sql_outside(root)
    assert [w.split(":")[0:2] for w in wrong] == [
        ["daemon.lane.ops", "3"],
        ["daemon.lane.ops", "4"],
    ]


@pytest.mark.parametrize("name", ["daemon.rules.units", "daemon.rules.lane.machine"])
def test_the_rules_really_are_under_the_check(name: str) -> None:
    assert name in {m.name for m in modules(ROOT)}


def test_two_classes_of_one_name_are_found(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "daemon/config/model.py": "class Lane:\n    pass\n",
            "daemon/lane/loop.py": "class Lane:\n    class Inner:\n        pass\n",
            "daemon/lane/api.py": "class Inner:\n    pass\n",
        },
    )
    assert colliding_class_names(root) == {"Lane": ["daemon.config.model", "daemon.lane.loop"]}
