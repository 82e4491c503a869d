"""The import graph, read from the source: imports point downwards only. Every package and every
library module of ``src/`` has a rank; a module may import its own package and anything ranked
below it, never a peer or anything above. The verbs (``src/<verb>.py``, run as ``python -m``) sit
on top and the library never imports one. ``conf/`` imports nothing of the library but the
schemas it registers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
SRC_DIR = REPO_DIR / "src"

# lower ranks are lower layers; docs/architecture.md draws the same picture
RANK = {
    "labels": 0, "runtime": 0, "settings": 0,  # leaves: the class list, thread set-up, config -> dataclass
    "data": 1,                              # manifests, audio, corpus adapters
    "encoders": 2, "vad": 2,
    "models": 3, "embeddings": 3,           # networks and checkpoints; the store and its reader
    "building": 4, "evaluation": 4,         # configs -> objects; metrics, calibration, their figures
    "training": 5, "inference": 5, "analysis": 5,
    "serving": 6,                           # the HTTP service around inference
    "config_store": 6,                      # every group's schema, registered with Hydra
    "cli": 7,                               # what every verb does around its work
}
VERB_RANK = max(RANK.values()) + 1



def imports_of(source: str) -> set[str]:
    """Every ``src.*`` module the source imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src."):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("src."))
    return out


def is_verb(path: Path) -> bool:
    return path.parent == SRC_DIR and 'if __name__ == "__main__"' in path.read_text()


VERBS = {p.stem for p in SRC_DIR.glob("*.py") if is_verb(p)}
PACKAGES = {p.parent.name for p in SRC_DIR.glob("*/__init__.py")}
LIBRARY_MODULES = {p.stem for p in SRC_DIR.glob("*.py") if p.stem != "__init__" and not is_verb(p)}
SOURCES = sorted(p for p in SRC_DIR.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC_DIR)


def unit_of(path: Path) -> str:
    """The package (``models``) or top-level module (``building``, ``predict``) a file belongs to."""
    rel = path.relative_to(SRC_DIR)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def rank_of(unit: str) -> int:
    return VERB_RANK if unit in VERBS else RANK[unit]


def upward_imports(unit: str, source: str) -> set[str]:
    """The imports of ``source`` (a file of ``unit``) that are not strictly below it: a peer, an upper
    layer, or a verb from the library. Verbs may import verbs (``study`` runs ``train``)."""
    bad = set()
    for module in imports_of(source):
        target = module.split(".")[1]
        if target == unit or (unit in VERBS and target in VERBS):
            continue
        if target not in VERBS and target not in RANK:
            bad.add(module)  # unranked: the coverage test names it
        elif rank_of(target) >= rank_of(unit):
            bad.add(module)
    return bad


def test_every_package_and_library_module_has_a_rank():
    assert set(RANK) == PACKAGES | LIBRARY_MODULES, (
        f"unranked: {sorted((PACKAGES | LIBRARY_MODULES) - set(RANK))}; "
        f"ranked but gone: {sorted(set(RANK) - PACKAGES - LIBRARY_MODULES)}")
    assert {"predict", "train", "serve", "stream", "extract"} <= VERBS and not VERBS & set(RANK)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC_DIR)))
def test_imports_point_downwards(path):
    unit = unit_of(path)
    bad = upward_imports(unit, path.read_text())
    assert not bad, f"{path.relative_to(REPO_DIR)} (rank {rank_of(unit)}) imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted(SRC_DIR.glob("*/*.py")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_library_never_imports_a_verb(path):
    verbs = {m for m in imports_of(path.read_text()) if m.split(".")[1] in VERBS and m.count(".") == 1}
    assert not verbs, f"{path} imports the verb(s) {verbs}"


def test_conf_imports_nothing():
    """``conf/`` is YAML (and an empty package file): the library registers the schemas, not the configs."""
    sources = list((REPO_DIR / "conf").rglob("*.py"))
    assert sources, "conf/__init__.py makes conf a package Hydra can find (pkg://conf)"
    for path in sources:
        tree = ast.parse(path.read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], f"{path} imports"


def test_the_rule_catches_an_upward_or_sideways_import():
    assert upward_imports("models", "from src.training.loop import fit\n") == {"src.training.loop"}
    assert upward_imports("inference", "def f():\n    import src.training.splits\n") == {"src.training.splits"}
    assert upward_imports("data", "from src.vad.silero import VadParams\n") == {"src.vad.silero"}
    assert upward_imports("serving", "from src.predict import main\n") == {"src.predict"}
    assert upward_imports("training", "from src.nowhere import x\n") == {"src.nowhere"}
    assert not upward_imports("training", "from src.evaluation.metrics import full_metrics\n"
                                          "from src.training.loop import fit\nfrom src.runtime import set_threads\n")
    assert not upward_imports("study", "from src.train import train\nfrom src.cli import verb\n")


def test_the_architecture_page_shows_the_same_ranks():
    """docs/architecture.md's rank table is this one (the verbs' row aside)."""
    shown = {}
    for rank, cell in re.findall(r"^\| (\d+) \| (.+) \|$", (REPO_DIR / "docs" / "architecture.md").read_text(), re.M):
        if int(rank) != VERB_RANK:
            for name in re.findall(r"`([a-z_]+)(?:\.py|/)`", cell):
                shown[name] = int(rank)
    assert shown == RANK
