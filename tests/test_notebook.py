"""``notebooks/analysis.ipynb`` executed headless (nbclient) on a real run trained in ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_train import ENCODER, REPO_DIR, RUN_NAME, is_png, sample_embeddings, train_sample_run

NOTEBOOK_PATH = REPO_DIR / "notebooks" / "analysis.ipynb"
CELL_TIMEOUT_S = 300


def execute(cwd: Path) -> nbformat.NotebookNode:
    """Run the whole notebook in a fresh ``python3`` kernel started in ``cwd``."""
    nb = nbformat.read(NOTEBOOK_PATH, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_notebook_ships_executed_and_small():
    """Saved with the outputs of a run on the bundled sample, every code cell run once, in order."""
    nb = nbformat.read(NOTEBOOK_PATH, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    assert len([o for o in outs if "image/png" in o.get("data", {})]) == 3
    assert NOTEBOOK_PATH.stat().st_size < 512 * 1024  # a few plots and one audio player
    printed = "".join(o.get("text", "") for o in outs)
    assert "data sample" in printed  # a run on the bundled sample
    assert any('os.environ.get("RUN_DIR")' in c.source for c in code)
    assert any('os.environ.get("ANALYSIS_DIR"' in c.source for c in code)


def test_notebook_shows_the_shipped_model_next_to_the_run():
    nb = nbformat.read(NOTEBOOK_PATH, as_version=4)
    html = [o["data"]["text/html"] for o in outputs(nb) if "text/html" in o.get("data", {})]
    assert any("shipped model" in t and "this run" in t for t in html)  # the two test columns side by side
    cards = [o["data"]["text/markdown"] for o in outputs(nb) if "text/markdown" in o.get("data", {})]
    assert any(c.startswith("# Model card: `default`") for c in cards)
    first = nb.cells[0].source
    assert "pip install jupyterlab" in first and "jupyter lab notebooks/analysis.ipynb" in first


@pytest.mark.slow
def test_notebook_runs_on_a_real_run(tmp_path_factory, tmp_path, monkeypatch):
    embeddings_dir = sample_embeddings(tmp_path_factory)
    run_dir = tmp_path / "runs" / RUN_NAME
    train_sample_run(embeddings_dir, run_dir)
    analysis_dir = tmp_path / "post-analysis"
    monkeypatch.setenv("RUN_DIR", str(run_dir))  # the kernel inherits the environment
    monkeypatch.setenv("ANALYSIS_DIR", str(analysis_dir))

    nb = execute(REPO_DIR)
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    images = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # reliability, accuracy by duration, UMAP
    players = [o for o in outs if "<audio" in o.get("data", {}).get("text/html", "")]
    assert 1 <= len(players) <= 3
    tables = [o for o in outs if "<table" in o.get("data", {}).get("text/html", "")]
    assert len(tables) >= 5  # split sizes, headline, by duration, by group, mistakes
    assert any("ece_after_calibration" in t["data"]["text/html"] for t in tables)
    # analyze_run ran, writing where the parameters said
    assert (analysis_dir / ENCODER / "test" / "index.csv").is_file()
    assert is_png(run_dir / "reliability.png") and is_png(embeddings_dir / f"{ENCODER}-embeddings.png")

    # started in notebooks/ (as Jupyter would be) it moves to the repository root; without RUN_DIR it
    # opens the newest finished run under RUNS_DIR; the plots exist now, so analyze is not rerun
    monkeypatch.delenv("RUN_DIR")
    monkeypatch.setenv("RUNS_DIR", str(run_dir.parent))
    nb = execute(REPO_DIR / "notebooks")
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    printed = "".join(o.get("text", "") for o in outs)
    assert f"working in {REPO_DIR}\n" in printed and f"{run_dir}: encoder {ENCODER}" in printed
    assert len([o for o in outs if "image/png" in o.get("data", {})]) == 3
