"""The speaker-gender toolkit.

Importing it silences two warnings that third-party packages print on every command and that say
nothing about the user's work: webrtcvad's (a Resemblyzer dependency) ``pkg_resources is
deprecated`` and torch's ``torch.jit.load is deprecated`` (Silero's TorchScript model)."""

import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)


def checkout_dir() -> Path | None:
    """The source checkout this package is imported from (the folder with ``pyproject.toml`` that
    holds ``src/``), or ``None`` for an installed copy (``pip install``, not ``-e``)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "src").is_dir() else None
