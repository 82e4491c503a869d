"""The models shipped with the toolkit, and which model a verb uses when it is not told.

``models/<name>/`` holds what a run folder holds for inference: ``config.yaml`` (the encoder),
``best.pt`` (the head, its normalisation, temperatures, age head and OOD gate; the encoders'
own weights come from their wheels) and ``MODEL_CARD.md``. In a checkout they are the checkout's
``models/``; an installed wheel carries a copy of them as ``src/shipped_models/`` (``setup.py``).
"""

from __future__ import annotations

import json
import logging
from importlib.resources import files
from pathlib import Path

from src.models.checkpoint import CHECKPOINT_NAME

log = logging.getLogger(__name__)

PACKAGED_MODELS_DIR = "shipped_models"  # the installed copy: <site-packages>/src/shipped_models/<name>/
DEFAULT_MODEL = "default"


def models_dir() -> Path:
    """Where the shipped models are: the checkout's ``models/`` when ``src`` is imported from a
    checkout (development, editable installs), else the copy inside the installed package."""
    from src import checkout_dir

    checkout = checkout_dir()
    if checkout is not None and (checkout / "models").is_dir():
        return checkout / "models"
    return Path(str(files("src").joinpath(PACKAGED_MODELS_DIR)))  # a wheel installs as files on disk


def pretrained_dir(name: str = DEFAULT_MODEL) -> Path:
    """``<models>/<name>/``: the shipped model's folder (:func:`models_dir` says where that is).

    Raises:
        FileNotFoundError: no such shipped model (the message lists the ones there are).
    """
    root = models_dir()
    path = root / name
    if not (path / CHECKPOINT_NAME).is_file():
        known = sorted(p.name for p in root.glob(f"*/{CHECKPOINT_NAME}")) if root.is_dir() else []
        raise FileNotFoundError(f"no shipped model {name!r} in {root} (there are: {known or 'none'})")
    return path


def resolve_model(run: str | Path | None, runs_dir: str | Path) -> Path:
    """The folder of the model a verb should use.

    ``run`` is a run folder, ``latest`` / ``latest:<encoder>`` (the newest finished run under
    ``runs_dir``), or ``default`` (the shipped model). ``latest`` with no finished run falls back to
    the shipped default model, and says so.

    Raises:
        RunError: no such folder, or a folder that is not a finished run (no checkpoint).
    """
    from src.models.run_folder import RunError, resolve_run

    if run in (None, "", DEFAULT_MODEL):
        return pretrained_dir(DEFAULT_MODEL)
    try:
        path = resolve_run(run, runs_dir)
        if not path.is_dir() and not path.is_absolute():  # runs/<name> or <name>, from any folder
            path = next((p for p in (Path(runs_dir) / path.name, Path(runs_dir).parent / path) if p.is_dir()), path)
        if not path.is_dir():
            raise RunError(f"run={run}: no such run folder (a folder under {runs_dir}, latest, "
                           f"latest:<encoder> or default)")
        if not (path / CHECKPOINT_NAME).is_file():
            raise RunError(f"run={run}: {path} is not a finished run (no {CHECKPOINT_NAME}); it may have "
                           f"crashed or still be training")
        warning = weaker_than_shipped(path)
        if warning:
            log.warning(warning)
        return path
    except RunError:
        if str(run) != "latest":
            raise
        path = pretrained_dir(DEFAULT_MODEL)
        log.info("no finished run under %s: using the shipped model %s (card: %s)", runs_dir, path,
                 path / "MODEL_CARD.md")
        return path


def weaker_than_shipped(run_dir: Path) -> str | None:
    """A one-line warning when a trained run scored below the shipped default model, else None.

    The run's figure is the balanced accuracy on its own test split (``metrics.json``); the shipped
    model's is its speaker-grouped nested cross-validation on clean clips, for adults when the run's
    test split holds only adults, else over all age groups. A run without these figures, or the
    shipped model itself, gives None.
    """
    from src.models.run_folder import METRICS_NAME

    try:
        test = json.loads((Path(run_dir) / METRICS_NAME).read_text()).get("test") or {}
        shipped_dir = pretrained_dir(DEFAULT_MODEL)
        if Path(run_dir).resolve() == shipped_dir.resolve():
            return None
        clean = json.loads((shipped_dir / METRICS_NAME).read_text())["nested_cv"]["clean"]
    except (OSError, ValueError, KeyError):
        return None
    score = test.get("balanced_accuracy")
    if not isinstance(score, (int, float)):
        return None
    groups = set((test.get("accuracy_by_group") or {}).get("age_group", {})) - {"(none)"}
    key = "adult" if groups <= {"adult"} else "all"
    ref = clean.get(key) or {}
    if not isinstance(ref.get("balanced_accuracy"), (int, float)) or score >= ref["balanced_accuracy"]:
        return None
    who = "adults" if key == "adult" else "all age groups"
    return (f"{Path(run_dir).name} scored {100 * score:.1f} % balanced accuracy on its test split "
            f"({test.get('n', '?')} clips); the shipped model scores {100 * ref['balanced_accuracy']:.1f} % "
            f"[{100 * ref['ci_low']:.1f}, {100 * ref['ci_high']:.1f}] on {who} in speaker-grouped nested CV "
            f"({ref.get('speakers', '?')} speakers; {shipped_dir / 'MODEL_CARD.md'}): run=default uses it")
