"""The import graph, read from the source: the library never imports a verb, and the lower layers
never import the upper ones (verbs -> inference/training/analysis -> models, embeddings ->
encoders, vad -> data)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC_DIR = Path(__file__).resolve().parents[1] / "src"
VERBS = {p.stem for p in SRC_DIR.glob("*.py")} - {"__init__", "building", "labels"}
UPPER = {"data": {"training", "inference", "analysis", "serving", "models", "embeddings", "encoders", "vad"},
         "models": {"training", "inference", "analysis", "serving", "embeddings"},
         "encoders": {"training", "inference", "analysis", "serving", "models", "embeddings"},
         "vad": {"training", "inference", "analysis", "serving", "models", "embeddings", "encoders"}}


def imports(path: Path) -> set[str]:
    """Every ``src.*`` module the file imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src."):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("src."))
    return out


LIBRARY = sorted(p for p in SRC_DIR.glob("*/*.py"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_library_never_imports_a_verb(path):
    verbs = {m for m in imports(path) if m.split(".")[1] in VERBS and m.count(".") == 1}
    assert not verbs, f"{path} imports the verb(s) {verbs}"


@pytest.mark.parametrize("layer", sorted(UPPER))
def test_lower_layers_never_import_upper_ones(layer):
    for path in (SRC_DIR / layer).glob("*.py"):
        upper = {m for m in imports(path) if m.split(".")[1] in UPPER[layer]}
        assert not upper, f"{path} imports {upper}"


def test_speech_data_does_not_import_the_vad():
    assert not {m for m in imports(SRC_DIR / "data" / "speech.py") if m.startswith(("src.vad", "src.encoders"))}


def test_building_has_no_edge_into_the_upper_layers():
    """``building.py`` turns configs into components (data, VAD, encoders, models, embeddings): the
    training, inference, analysis and serving layers sit above it."""
    upper = {m for m in imports(SRC_DIR / "building.py")
             if m.split(".")[1] in {"training", "inference", "analysis", "serving"}}
    assert not upper, f"building.py imports {upper}"


def test_run_folders_are_read_outside_training():
    """predict, stream and serve read run folders: that code lives below ``training/``."""
    for layer in ("inference", "serving"):
        for path in (SRC_DIR / layer).glob("*.py"):
            assert not {m for m in imports(path) if m.startswith("src.training")}, f"{path} imports training"
