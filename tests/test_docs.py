"""The docs site builds with ``mkdocs build --strict`` (a broken link, anchor, include or docstring
reference fails it), and the README's links into ``docs/`` land on headings the site has."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_DIR

BUILD_TIMEOUT_S = 120


def mkdocs_build(config_path: Path, site_dir: Path) -> subprocess.CompletedProcess:
    # no -q: it drops the warnings before --strict counts them, and a broken link would pass
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config_path),
                           "-d", str(site_dir)], cwd=config_path.parent, env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = mkdocs_build(REPO_DIR / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_site_builds_strict_with_every_page(site_dir):
    for page in ("index.html", "usage/index.html", "pipeline/index.html", "python-api/index.html",
                 "reference/index.html", "architecture/index.html", "results/index.html",
                 "benchmarks/index.html", "model-card/index.html"):
        assert (site_dir / page).is_file(), page


def test_the_reference_is_generated_from_the_docstrings(site_dir):
    html = (site_dir / "reference" / "index.html").read_text()
    for name in ("src.inference.pipeline.GenderPipeline.from_pretrained",
                 "src.inference.pipeline.GenderPipeline.__call__",
                 "src.inference.streaming.StreamingGender", "src.inference.run_folder.RunFolder.resolve"):
        assert f'id="{name}"' in html, name
    assert "VAD, encoder and trained classifier behind one call." in html  # GenderPipeline's docstring


def test_the_readme_links_land_on_site_headings(site_dir):
    links = re.findall(r"\]\(docs/([a-z-]+)\.md#([^)\s]+)\)", (REPO_DIR / "README.md").read_text())
    assert links
    for page, anchor in links:
        assert f'id="{anchor}"' in (site_dir / page / "index.html").read_text(), f"docs/{page}.md#{anchor}"


def test_a_broken_anchor_fails_the_build(tmp_path):
    """The strict build is a real check: the same config on a copy of the pages with one bad link."""
    shutil.copy(REPO_DIR / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPO_DIR / "docs", tmp_path / "docs")
    for name in ("src", "models"):
        (tmp_path / name).symlink_to(REPO_DIR / name)
    with (tmp_path / "docs" / "usage.md").open("a") as f:
        f.write("\nSee [nowhere](pipeline.md#no-such-heading).\n")
    proc = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    assert "no-such-heading" in proc.stderr


def load_hook():
    spec = importlib.util.spec_from_file_location("repo_links", REPO_DIR / "docs" / "hooks" / "repo_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_links_to_the_model_card_point_at_its_site_page():
    rewrite = load_hook().rewrite
    assert rewrite("the [card](../models/default/MODEL_CARD.md).", "results.md") == "the [card](model-card.md)."
    assert rewrite("[c](../../models/default/MODEL_CARD.md#limits)", "sub/page.md") == "[c](../model-card.md#limits)"
    for untouched in ("[x](../README.md)", "[y](pipeline.md#7-predict)", "[z](https://example.org/a.md)"):
        assert rewrite(untouched, "results.md") == untouched
