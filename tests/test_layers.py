"""The package's layers, as the import-linter contracts in pyproject.toml state them: each
contract holds on the real import graph, each catches the breach it is there for, and no SQL on
the experience store is written outside ``store/``."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import grimp
import pytest
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.private_modules import PrivateModulesContract

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "pytest_teach"
TYPES = {
    "forbidden": ForbiddenContract,
    "layers": LayersContract,
    "private_modules": PrivateModulesContract,
}


def _config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "importlinter"
    ]


def _contracts() -> dict[str, object]:
    """The contracts as lint-imports reads them from pyproject.toml."""
    from importlinter import configuration
    from importlinter.application.use_cases import read_user_options

    configuration.configure()
    options = read_user_options(str(REPO / "pyproject.toml"))
    return {
        c["id"]: TYPES[c["type"]](c["name"], options.session_options, c)
        for c in options.contracts_options
    }


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("pytest_teach", cache_dir=None)


def test_the_contracts_are_the_layers_the_privates_and_no_cli() -> None:
    config = _config()
    assert config["root_package"] == "pytest_teach"
    kinds = {c["id"]: c["type"] for c in config["contracts"]}
    assert kinds == {"private": "private_modules", "layers": "layers", "no-cli": "forbidden"}
    layers = next(c for c in config["contracts"] if c["id"] == "layers")
    assert layers["layers"][0] == "cli" and layers["exhaustive"] is True
    names = [name.strip() for layer in layers["layers"] for name in layer.split("|")]
    assert names.index("export") < names.index("store")
    top = {p.stem for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert set(names) == top - {"__init__"}, "every top-level module has its layer"
    no_cli = next(c for c in config["contracts"] if c["id"] == "no-cli")
    assert {m.split(".")[1] for m in no_cli["source_modules"]} == top - {"__init__", "cli"}


@pytest.mark.parametrize("contract_id", ["private", "layers", "no-cli"])
def test_the_contract_holds(graph: grimp.ImportGraph, contract_id: str) -> None:
    contract = _contracts()[contract_id]
    check = contract.check(copy.deepcopy(graph), verbose=False)
    assert check.kept, check.metadata


@pytest.mark.parametrize(
    ("importer", "imported", "broken"),
    [
        ("pytest_teach.store._store", "pytest_teach.cli", {"layers", "no-cli"}),
        ("pytest_teach.export._formats", "pytest_teach.compare", {"layers"}),
        ("pytest_teach.agents._chat", "pytest_teach.envs", {"layers"}),
        ("pytest_teach.report._html", "pytest_teach.store._store", {"private"}),
    ],
)
def test_the_contracts_catch_a_breach(
    graph: grimp.ImportGraph, importer: str, imported: str, broken: set[str]
) -> None:
    breached = copy.deepcopy(graph)
    breached.add_import(importer=importer, imported=imported, line_number=1, line_contents="x")
    found = set()
    for cid, contract in _contracts().items():
        before = contract.check(copy.deepcopy(graph), verbose=False)
        after = contract.check(copy.deepcopy(breached), verbose=False)
        if not after.kept and repr(after.metadata) != repr(before.metadata):
            found.add(cid)
    assert found == broken


SQL_ON_THE_STORE = re.compile(r"\bstore\.conn\b|\.conn\.execute\(|\bstore\._conn\b")


def test_no_sql_on_the_store_outside_store() -> None:
    found = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] != "store"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SQL_ON_THE_STORE.search(line)
    ]
    assert found == []
