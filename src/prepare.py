"""Write a manifest CSV from a corpus tree.

    python -m src.prepare source=<librispeech|vctk|commonvoice|folder> root=<dir> out=<csv>

``main`` only reads the config and calls :func:`prepare`; tests call ``prepare`` directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from src.cli import verb
from src.data.adapters import commonvoice_manifest, folder_manifest, librispeech_manifest, vctk_manifest

SOURCES: tuple[str, ...] = ("librispeech", "vctk", "commonvoice", "folder")


def prepare(source: str, root: str | Path, out_path: str | Path, mic: str = "mic1",
            tsv: str = "validated.tsv") -> list[dict[str, str]]:
    """Run the adapter of ``source`` on ``root`` and write the manifest to ``out_path``.

    Args:
        source: one of :data:`SOURCES`.
        root: the corpus folder.
        out_path: the manifest CSV; its paths are relative to its folder.
        mic: VCTK 0.92 microphone to keep (``mic1``/``mic2``).
        tsv: Common Voice table inside ``root``.

    Returns:
        The manifest rows written.

    Raises:
        ValueError: for an unknown ``source``.
        ManifestError: from the adapter (missing root or speaker table, no clips).
    """
    adapters: dict[str, Callable[[str | Path, str | Path], list[dict[str, str]]]] = {
        "librispeech": librispeech_manifest,
        "vctk": functools.partial(vctk_manifest, mic=mic),
        "commonvoice": functools.partial(commonvoice_manifest, tsv=tsv),
        "folder": folder_manifest,
    }
    if source not in adapters:
        raise ValueError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    return adapters[source](root, out_path)


@verb("prepare")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: see ``conf/prepare.yaml`` or ``--help``."""
    prepare(cfg.source, cfg.root, cfg.out, mic=cfg.mic, tsv=cfg.tsv)


if __name__ == "__main__":
    main()
