"""One build step that ``pyproject.toml`` cannot declare: the shipped models.

``models/<name>/`` (each folder holding a ``best.pt``) lives beside ``src/`` in a checkout, outside
any package; a wheel carries a copy of every file in it as ``src/shipped_models/<name>/``, where
``src.inference.run_folder.models_dir`` looks when there is no checkout. The copy is made afresh on every
build (no file of an older model survives in ``build/``), and whatever files the folder holds go
with it.
An editable install copies nothing: it imports ``src`` from the checkout, which has ``models/``.
Everything else (packages, package data, console scripts) is declared in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE / "models"
CHECKPOINT_NAME = "best.pt"  # src.models.checkpoint.CHECKPOINT_NAME (not imported: setup.py needs no torch)
PACKAGED = ("src", "shipped_models")  # src.inference.run_folder.PACKAGED_MODELS_DIR


def shipped_files() -> list[Path]:
    """Every file of every shipped model folder, relative to ``models/`` (hidden files and caches left out)."""
    out = []
    for model in sorted(p.parent for p in MODELS_DIR.glob(f"*/{CHECKPOINT_NAME}")):
        for f in sorted(model.rglob("*")):
            rel = f.relative_to(MODELS_DIR)
            if f.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                out.append(rel)
    return out


class BuildPyWithModels(build_py):
    """``build_py``, then ``models/<name>/*`` copied to ``<build>/src/shipped_models/<name>/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib, *PACKAGED)
        shutil.rmtree(target, ignore_errors=True)
        files = shipped_files()
        if not files:
            raise RuntimeError(f"no shipped model under {MODELS_DIR} (a folder with {CHECKPOINT_NAME}): "
                               f"a wheel without one answers nothing")
        for rel in files:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(MODELS_DIR / rel, target / rel)


setup(cmdclass={"build_py": BuildPyWithModels})
