"""``RunFolder``: the one way from ``run=`` to a model that scores audio, and to what a run wrote.

    folder = RunFolder.resolve("latest", "runs")   # a folder, latest, latest:<key>, default
    model = folder.load()                          # RunModel: classifier, encoder (or trunk), age head
    segmenter = model.segmenter()                  # Silero with the run's VAD settings
    folder.config, folder.metrics, folder.key, folder.predictions()

Every verb that takes ``run=`` (predict, stream, serve, evaluate, analyze), ``compare`` (the
newest run of each key and model), ``GenderPipeline.from_run`` / ``from_pretrained`` and the
bench scripts find their run here. A folder is a finished run when it holds ``best.pt``,
``config.yaml`` and ``metrics.json`` (:mod:`src.models.run_folder`); the shipped models
(``models/<name>/``: the same three and a ``MODEL_CARD.md``; the encoders' own weights come from
their wheels) are run folders too. In a checkout they are the checkout's ``models/``; an installed
wheel carries a copy of them as ``src/shipped_models/`` (``setup.py``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.encoders.base import Encoder
from src.models.checkpoint import (
    CHECKPOINT_NAME,
    END_TO_END,
    TrainedClassifier,
    checkpoint_kind,
    read_checkpoint,
)
from src.models.run_folder import (
    CONFIG_NAME,
    METRICS_NAME,
    PREDICTIONS_NAME,
    RUN_NAME_GLOB,
    RunError,
    check_finished,
    is_finished,
    run_key,
)
from src.settings import from_cfg
from src.vad.params import VadSettings
from src.vad.silero import SileroSegmenter

log = logging.getLogger(__name__)

PACKAGED_MODELS_DIR = "shipped_models"  # the installed copy: <site-packages>/src/shipped_models/<name>/
DEFAULT_MODEL = "default"
LATEST = "latest"
SHIPPED_OUTPUTS_PREFIX = "shipped-"  # evaluate's outputs for a shipped model: <runs_dir>/shipped-<name>/


def models_dir() -> Path:
    """Where the shipped models are: the checkout's ``models/`` when ``src`` is imported from a
    checkout (development, editable installs), else the copy inside the installed package."""
    from src import checkout_dir

    checkout = checkout_dir()
    if checkout is not None and (checkout / "models").is_dir():
        return checkout / "models"
    return Path(str(files("src").joinpath(PACKAGED_MODELS_DIR)))  # a wheel installs as files on disk


INFERENCE_VAD_BATCH = 8  # files per Silero call at inference; the speech found does not depend on it, and a batch
# is padded to its longest file, so a small one keeps one long recording from padding many short ones


@dataclass
class RunModel:
    """A run's model ready to score.

    Attributes:
        kind: the checkpoint's kind (``embedding_head`` or ``end_to_end``).
        classifier: the calibrated gender head (with its age heads, OOD gate ...).
        encoder: what turns speech into the classifier's inputs: the run's encoder, or an end-to-end
            network's trunk; ``None`` when not asked for (``with_encoder=False``, a head on embeddings).
        age_classifier: an end-to-end network's age-band head, else ``None``.
    """

    kind: str
    classifier: TrainedClassifier
    encoder: Encoder | None
    age_classifier: TrainedClassifier | None = None

    @property
    def reads_audio(self) -> bool:
        """True when the model has no embeddings store to score: it is evaluated on the audio itself."""
        return self.kind == END_TO_END

    def segmenter(self) -> SileroSegmenter:
        """Silero with the VAD settings the run's training data was cut with."""
        saved = self.classifier.encoder.get("options", {}).get("vad") or {}
        settings = from_cfg(VadSettings, saved, batch_size=INFERENCE_VAD_BATCH)
        return SileroSegmenter(settings.params, batch_size=settings.batch_size, backend=settings.backend,
                               retry_threshold=settings.retry_threshold)


class RunFolder:
    """A finished run folder (or a shipped model's): its config, metrics, predictions and model.

    Build one with :meth:`resolve` (what ``run=`` says), :meth:`open` (a folder), :meth:`shipped`
    or :meth:`latest` / :meth:`latest_by_model`; each checks the folder is finished.
    """

    def __init__(self, run_dir: str | Path, runs_dir: str | Path | None = None):
        """``run_dir``, checked to be finished; ``runs_dir`` is where a shipped model's evaluations go."""
        self.dir = check_finished(run_dir)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.dir)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunFolder) and self.dir == other.dir

    def __hash__(self) -> int:
        return hash(self.dir)

    # ------------------------------------------------------------------------------ finding one

    @classmethod
    def open(cls, run_dir: str | Path, runs_dir: str | Path | None = None) -> RunFolder:
        """The folder ``run_dir`` (a :class:`RunFolder` passes through).

        Raises:
            RunError: no such folder, or not a finished run.
        """
        if isinstance(run_dir, RunFolder):
            return run_dir
        return cls(run_dir, runs_dir)

    @classmethod
    def shipped(cls, name: str = DEFAULT_MODEL, runs_dir: str | Path | None = None) -> RunFolder:
        """``<models>/<name>/``: a model shipped with the toolkit (:func:`models_dir` says where).

        Raises:
            FileNotFoundError: no such shipped model (the message lists the ones there are).
        """
        root = models_dir()
        if not is_finished(root / name):
            known = sorted(p.name for p in root.iterdir() if is_finished(p)) if root.is_dir() else []
            raise FileNotFoundError(f"no shipped model {name!r} in {root} (there are: {known or 'none'})")
        return cls(root / name, runs_dir)

    @classmethod
    def resolve(cls, run: str | Path | None, runs_dir: str | Path) -> RunFolder:
        """The run ``run=`` names.

        ``run`` is a folder (absolute, relative, ``runs/<name>`` or ``<name>`` under ``runs_dir``),
        ``latest`` (the newest finished run under ``runs_dir``), ``latest:<key>`` (the newest of that
        encoder, or end-to-end model), or ``default`` / empty (the shipped model). ``latest`` with no
        finished run falls back to the shipped model, and says so. A run that scored below the
        shipped model says so too (:meth:`weaker_than_shipped`).

        Raises:
            RunError: no such folder, no finished run of ``<key>``, or a folder that is not finished.
        """
        text = "" if run is None else str(run)
        if text in ("", DEFAULT_MODEL):
            return cls.shipped(DEFAULT_MODEL, runs_dir)
        if text == LATEST or text.startswith(LATEST + ":"):  # a folder may be called latest-something
            key = text.split(":", 1)[1] if ":" in text else None
            runs = [r for k, r in cls.latest(runs_dir).items() if key is None or k == key]
            if not runs and key is None:
                folder = cls.shipped(DEFAULT_MODEL, runs_dir)
                log.info("no finished run under %s: using the shipped model %s (card: %s)", runs_dir, folder.dir,
                         folder.dir / "MODEL_CARD.md")
                return folder
            if not runs:
                raise RunError(f"no finished run of {key} under {runs_dir}: train one with `python -m src.train`")
            folder = max(runs, key=lambda r: r.stamp)
        else:
            path = Path(text)
            if not path.is_dir() and not path.is_absolute():  # runs/<name> or <name>, from any folder
                path = next((p for p in (Path(runs_dir) / path.name, Path(runs_dir).parent / path) if p.is_dir()),
                            path)
            if not path.is_dir():
                raise RunError(f"run={run}: no such run folder (a folder under {runs_dir}, {LATEST}, "
                               f"{LATEST}:<encoder> or {DEFAULT_MODEL})")
            folder = cls(path, runs_dir)
        warning = folder.weaker_than_shipped()
        if warning:
            log.warning(warning)
        return folder

    @classmethod
    def finished(cls, runs_dir: str | Path) -> list[RunFolder]:
        """Every finished run under ``runs_dir`` named ``<key>-<YYYY-MM-DD_HH-MM-SS>``, oldest first."""
        runs = [cls(d, runs_dir) for d in Path(runs_dir).glob(RUN_NAME_GLOB) if is_finished(d)]
        return sorted(runs, key=lambda r: r.stamp)

    @classmethod
    def latest(cls, runs_dir: str | Path) -> dict[str, RunFolder]:
        """The newest finished run of each key (encoder, or end-to-end model) under ``runs_dir``."""
        return {r.key: r for r in cls.finished(runs_dir)}

    @classmethod
    def latest_by_model(cls, runs_dir: str | Path) -> dict[tuple[str, str], RunFolder]:
        """The newest finished run of each (key, ``model=``) pair under ``runs_dir``."""
        return {(r.key, r.model): r for r in cls.finished(runs_dir)}

    # ------------------------------------------------------------------------------- what it holds

    @property
    def name(self) -> str:
        return self.dir.name

    @cached_property
    def config(self) -> DictConfig:
        """The config it was trained with (``config.yaml``)."""
        return OmegaConf.load(self.dir / CONFIG_NAME)

    @cached_property
    def metrics(self) -> dict:
        """Its ``metrics.json``."""
        return json.loads((self.dir / METRICS_NAME).read_text())

    @property
    def key(self) -> str:
        """The key the run is named and found by: its encoder's, or an end-to-end model's name
        (:func:`src.models.run_folder.run_key`)."""
        return run_key(self.config)

    @property
    def model(self) -> str:
        """The ``model=`` key it was trained with (older runs: the class name, or empty)."""
        return str(self.metrics.get("model", ""))

    @property
    def stamp(self) -> str:
        """The time in its name (``<key>-<time>``), which orders the runs of one key."""
        return self.dir.name[len(self.key) + 1:]

    @property
    def is_shipped(self) -> bool:
        """True for a model shipped with the toolkit (a folder of :func:`models_dir`)."""
        return self.dir.resolve().parent == models_dir().resolve()

    @property
    def out_dir(self) -> Path:
        """Where verbs write what they derive from the run (``evaluate``'s ``eval-<source>/``): the run
        folder itself, or for a shipped model ``<runs_dir>/shipped-<name>/`` (never into ``models/``)."""
        if not self.is_shipped:
            return self.dir
        return Path(self.runs_dir if self.runs_dir is not None else "runs") / f"{SHIPPED_OUTPUTS_PREFIX}{self.name}"

    def has_predictions(self) -> bool:
        """True when training wrote the predictions of its own splits (a shipped model has none)."""
        return (self.dir / PREDICTIONS_NAME).is_file()

    def predictions(self) -> "pd.DataFrame":  # noqa: F821 (pandas is imported here only, on use)
        """The predictions training wrote for its train, val and test clips (``predictions.csv``)."""
        import pandas as pd

        if not self.has_predictions():
            raise RunError(f"{self.dir} has no {PREDICTIONS_NAME}")
        return pd.read_csv(self.dir / PREDICTIONS_NAME, keep_default_na=False)

    # ----------------------------------------------------------------------------------- the model

    def load(self, device: str = "cpu", with_encoder: bool = True) -> RunModel:
        """Load the checkpoint, whatever its kind, and (a head on embeddings, ``with_encoder``) build
        the encoder its embeddings were extracted with; an end-to-end network's trunk is its encoder.

        Raises:
            ValueError: the encoder built is not the one the run was trained on.
        """
        from src.building import build_encoder
        from src.models.end_to_end import load_end_to_end

        path = self.dir / CHECKPOINT_NAME
        blob = read_checkpoint(path)
        kind = checkpoint_kind(blob)
        if kind == END_TO_END:
            trunk, gender, age = load_end_to_end(path, blob)
            return RunModel(kind, gender, trunk, age)
        classifier = TrainedClassifier.from_blob(blob)
        if not with_encoder:
            return RunModel(kind, classifier, None)
        enc_cfg = OmegaConf.load(self.dir / CONFIG_NAME).encoder  # a fresh copy: it is edited below
        made_with = classifier.encoder.get("options", {}).get("model") or {}
        if "_target_" in made_with:  # the settings the embeddings were extracted with, not the train command's
            enc_cfg.model = OmegaConf.create(made_with)
            enc_cfg.dim = classifier.encoder.get("dim", enc_cfg.dim)
        enc_cfg.model.device = device
        encoder = build_encoder(enc_cfg)
        if classifier.encoder.get("weights") and classifier.encoder["weights"] != encoder.identity:
            raise ValueError(f"the run was trained on {classifier.encoder['weights']!r} embeddings but the "
                             f"encoder loaded is {encoder.identity!r}")
        return RunModel(kind, classifier, encoder)

    def weaker_than_shipped(self) -> str | None:
        """A one-line warning when a trained run scored below the shipped default model, else None.

        The run's figure is the balanced accuracy on its own test split (``metrics.json``); the shipped
        model's is its speaker-grouped nested cross-validation on clean clips, for adults when the run's
        test split holds only adults, else over all age groups. A run without these figures, or the
        shipped model itself, gives None.
        """
        if self.is_shipped:
            return None
        try:
            test = self.metrics.get("test") or {}
            shipped = RunFolder.shipped(DEFAULT_MODEL)
            clean = shipped.metrics["nested_cv"]["clean"]
        except (OSError, ValueError, KeyError, AttributeError):
            return None
        score = test.get("balanced_accuracy")
        if not isinstance(score, (int, float)):
            return None
        groups = set((test.get("accuracy_by_group") or {}).get("age_group", {})) - {"(none)"}
        which = "adult" if groups <= {"adult"} else "all"
        ref = clean.get(which) or {}
        if not isinstance(ref.get("balanced_accuracy"), (int, float)) or score >= ref["balanced_accuracy"]:
            return None
        who = "adults" if which == "adult" else "all age groups"
        return (f"{self.name} scored {100 * score:.1f} % balanced accuracy on its test split "
                f"({test.get('n', '?')} clips); the shipped model scores {100 * ref['balanced_accuracy']:.1f} % "
                f"[{100 * ref['ci_low']:.1f}, {100 * ref['ci_high']:.1f}] on {who} in speaker-grouped nested CV "
                f"({ref.get('speakers', '?')} speakers; {shipped.dir / 'MODEL_CARD.md'}): run=default uses it")
