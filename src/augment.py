"""``python -m src.augment data=<source> copies=<n>``: degraded copies of a source's audio, for
training only (noise and babble at 0-30 dB SNR, a simulated room, a telephone channel; see
``src/data/augment.py``).

    python -m src.augment data=dev                       # -> augmented/dev/{manifest.csv,audio/}
    python -m src.extract data=mix_aug encoder=resemblyzer_egemaps
    python -m src.train data=mix_aug encoder=resemblyzer_egemaps model=blocks

The copies keep their speaker ids, so a source that ``augments: <source>`` in a mix shares that
source's speakers and splits; training keeps only the copies of training speakers (never in val
or test). Rerun to resume: files already written are kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from src.building import load_clips
from src.cli import verb
from src.data.audio import SAMPLE_RATE_HZ, AudioError, load_audio
from src.data.augment import AugmentParams, babble_pool, degrade, write_flac
from src.data.manifest import write_manifest
from src.runtime import set_threads
from src.settings import from_cfg

log = logging.getLogger(__name__)

def run_augment(cfg: DictConfig) -> Path:
    """Write ``copies`` degraded copies of every clip and their manifest; returns the manifest."""
    from tqdm import tqdm

    set_threads(cfg.num_threads)
    params = from_cfg(AugmentParams, cfg.augment)
    clips = load_clips(cfg.data)
    out_dir = Path(cfg.out_dir)
    pool = babble_pool(clips, np.random.default_rng(cfg.seed))
    rows = []
    for n, clip in enumerate(tqdm(clips, unit="clip", desc="augment", disable=not cfg.progress)):
        try:
            wave = None
            for k in range(cfg.copies):
                rel = Path("audio") / clip.speaker / f"{Path(clip.path).stem}_aug{k}.flac"
                clip_rng = np.random.default_rng([cfg.seed, n, k])
                others = [w for spk, w in pool if spk != clip.speaker]
                if not (out_dir / rel).exists():
                    wave = load_audio(clip.path, SAMPLE_RATE_HZ, 7200.0) if wave is None else wave
                    y, done = degrade(wave, clip_rng, params, others)
                    write_flac(out_dir / rel, y)
                else:
                    done = ["(kept)"]
                rows.append({"path": str(rel), "speaker": clip.speaker, "gender": clip.gender,
                             "id": f"{clip.id}#aug{k}", "age": "" if clip.age is None else clip.age, **clip.groups,
                             "augmentation": "; ".join(done), "source_path": str(clip.path)})
        except AudioError as e:
            log.warning("%s: %s (no copy)", clip.path, e)
    path = write_manifest(rows, out_dir / "manifest.csv")
    log.info("%d copies of %d clips -> %s", len(rows), len(clips), path)
    return path


@verb("augment")
def main(cfg: DictConfig) -> None:
    run_augment(cfg)


if __name__ == "__main__":
    main()
