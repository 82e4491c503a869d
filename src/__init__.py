"""The speaker-gender toolkit.

    from src import GenderPipeline, StreamingGender
    pipe = GenderPipeline.from_pretrained()      # the shipped model
    pipe("call.m4a").label

The public objects are importable from here (loaded on first use, so that ``import src.cli`` and
the configs stay light): :class:`GenderPipeline` and its :class:`GenderResult` / :class:`Segment`,
:class:`StreamingGender` and its :class:`StreamEvent`, and ``CLASSES``. The package is called
``src`` for historical reasons (README, "Install as a package").

Importing it silences two warnings that third-party packages print on every command and that say
nothing about the user's work: webrtcvad's (a Resemblyzer dependency) ``pkg_resources is
deprecated`` and torch's ``torch.jit.load is deprecated`` (Silero's TorchScript model)."""

import importlib
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)

_PUBLIC = {  # name -> the module that defines it
    "GenderPipeline": "src.inference.pipeline",
    "GenderResult": "src.inference.pipeline",
    "Segment": "src.inference.pipeline",
    "StreamingGender": "src.inference.streaming",
    "StreamEvent": "src.inference.streaming",
    "CLASSES": "src.labels",
}
__all__ = [*_PUBLIC, "checkout_dir"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'src' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


def checkout_dir() -> Path | None:
    """The source checkout this package is imported from (the folder with ``pyproject.toml`` that
    holds ``src/``), or ``None`` for an installed copy (``pip install``, not ``-e``)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "src").is_dir() else None
