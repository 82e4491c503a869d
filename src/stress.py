"""``python -m src.stress data=<source>``: the speaking-style and channel stress set of a source:
each chosen clip under every condition of ``src/data/stress.py`` (expressive pitch, fast, slow,
1-2 s, telephone, Opus 8 kbit/s, AMR-NB, noise, babble, reverb).

    python -m src.stress data=speechocean762                 # -> stress/speechocean762/{manifest.csv,audio/}
    python -m src.extract data=manifest data.name=stress_speechocean762 \\
        data.manifest_path=stress/speechocean762/manifest.csv encoder=resemblyzer_egemaps

Copies keep their speaker ids and say their ``condition`` and the ``base_id`` of the clean clip, so
cross-validation scores each copy only with the model of the fold that holds its speaker out
(``python -m src.study protocol=cv``), and may train on the copies of training speakers. Rerun to
resume: files already written are kept.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from src.building import load_clips
from src.cli import verb
from src.data.audio import SAMPLE_RATE_HZ, AudioError, load_audio
from src.data.augment import babble_pool, write_flac
from src.data.manifest import write_manifest
from src.data.stress import CONDITIONS, stress
from src.runtime import set_threads

log = logging.getLogger(__name__)

def chosen_clips(clips: list, per_speaker: int, seed: int) -> list:
    """Up to ``per_speaker`` clips of every speaker, drawn with ``seed``, in manifest order."""
    by_speaker = defaultdict(list)
    for i, c in enumerate(clips):
        by_speaker[c.speaker].append(i)
    rng = np.random.default_rng(seed)
    keep = set()
    for idx in by_speaker.values():
        keep.update(rng.choice(idx, size=min(per_speaker, len(idx)), replace=False).tolist())
    return [c for i, c in enumerate(clips) if i in keep]


def run_stress(cfg: DictConfig) -> Path:
    """Write every condition of every chosen clip and their manifest; returns the manifest."""
    from tqdm import tqdm

    set_threads(cfg.num_threads)
    unknown = set(cfg.conditions) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"conditions={sorted(unknown)}: not among {', '.join(CONDITIONS)}")
    clips = chosen_clips(load_clips(cfg.data), cfg.clips_per_speaker, cfg.seed)
    out_dir = Path(cfg.out_dir)
    pool = babble_pool(clips, np.random.default_rng(cfg.seed))
    rows = []
    for n, clip in enumerate(tqdm(clips, unit="clip", desc="stress", disable=not cfg.progress)):
        try:
            wave = None
            for k, condition in enumerate(cfg.conditions):
                rel = Path("audio") / clip.speaker / f"{Path(clip.path).stem}_{condition}.flac"
                if not (out_dir / rel).exists():
                    if wave is None:
                        wave = load_audio(clip.path, SAMPLE_RATE_HZ, 7200.0)[: int(cfg.max_clip_s * SAMPLE_RATE_HZ)]
                    others = [w for spk, w in pool if spk != clip.speaker]
                    y = stress(wave, condition, np.random.default_rng([cfg.seed, n, k]), clip.gender, others)
                    write_flac(out_dir / rel, y)
                rows.append({"path": str(rel), "speaker": clip.speaker, "gender": clip.gender,
                             "id": f"{clip.id}#{condition}", "age": "" if clip.age is None else clip.age,
                             "corpus": "", "age_group": "", "emotion": "", **clip.groups,
                             "condition": condition, "base_id": clip.id})
        except AudioError as e:
            log.warning("%s: %s (no stressed copies)", clip.path, e)
    path = write_manifest(rows, out_dir / "manifest.csv")
    log.info("%d stressed copies of %d clips (%d speakers) -> %s", len(rows), len(clips),
             len({c.speaker for c in clips}), path)
    return path


@verb("stress")
def main(cfg: DictConfig) -> None:
    run_stress(cfg)


if __name__ == "__main__":
    main()
