"""The table cross-validation works on: every source's clean clips and their stressed copies, with
the Resemblyzer, eGeMAPS and acoustic blocks side by side (:class:`~src.training.selection.CvData`).

Each block comes from the embeddings the extract verb wrote (``resemblyzer_egemaps`` and
``acoustic``, so a union of blocks is exactly what the fusion encoder of those parts computes);
clips missing from either are left out (and counted). Speaker ids become ``<source>/<speaker>``;
a stressed copy takes its speaker, age group, corpus and emotion from its clean clip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from src.embeddings.dataset import EmbeddingSet, exclude, load_embedding_set, with_corpus_and_age
from src.embeddings.store import Source
from src.training.selection import CLEAN, CvData

log = logging.getLogger(__name__)

BLOCK_ENCODERS = ("resemblyzer_egemaps", "acoustic")  # their columns side by side: FEATURE_BLOCKS' order


@dataclass(frozen=True)
class CvSource:
    """One source of the table: its clean embeddings and, optionally, its stressed copies'."""

    clean: Source
    stress_dir: str | None = None  # the embeddings folder of ``python -m src.stress`` copies (None: none)


def _joined(embeddings_dir: str, corpus: str | None, age_group: str | None) -> EmbeddingSet:
    sets = [load_embedding_set(embeddings_dir, e, both_classes=False) for e in BLOCK_ENCODERS]
    common = set(sets[0].ids.tolist()).intersection(*(set(s.ids.tolist()) for s in sets[1:]))
    picked = []
    for s in sets:
        order = np.argsort(s.ids)
        keep = order[np.isin(s.ids[order], list(common))]
        picked.append(s.subset(keep))
    first = picked[0]
    dropped = {e: len(s) - len(common) for e, s in zip(BLOCK_ENCODERS, sets) if len(s) != len(common)}
    if dropped:
        log.info("%s: clips left out for lack of every block %s", embeddings_dir, dropped)
    joined = EmbeddingSet(x=np.concatenate([p.x for p in picked], axis=1), y=first.y, ids=first.ids,
                          paths=first.paths, speakers=first.speakers, speech_s=first.speech_s, split=first.split,
                          age=first.age, groups=first.groups)
    return with_corpus_and_age(joined, corpus, age_group)


def load_cv_data(sources: Sequence[CvSource], excluded: set[str] | None = None) -> CvData:
    """Every source's clean clips and stressed copies in one :class:`CvData`; speakers (or clips)
    in ``excluded`` left out everywhere."""
    parts = []
    for src in sources:
        s = src.clean
        clean = _joined(s.embeddings_dir, s.corpus, s.age_group)
        if excluded:  # names as the audit writes them (<source>/<speaker>), or bare
            mine = {n.split("/", 1)[1] for n in excluded if n.startswith(f"{s.name}/")}
            clean = exclude(clean, mine | {n for n in excluded if "/" not in n})
        n = len(clean)
        g = clean.groups
        info = {i: (g["age_group"][k], g["corpus"][k], g.get("emotion", np.full(n, ""))[k])
                for k, i in enumerate(clean.ids)}
        parts.append(_table(s.name, clean, np.full(n, CLEAN), clean.ids, info))
        if src.stress_dir:
            st = _joined(src.stress_dir, None, None)
            base = st.groups["base_id"]
            keep = np.isin(base, clean.ids)  # copies of excluded or unusable clips go too
            st = st.subset(keep)
            parts.append(_table(s.name, st, st.groups["condition"], st.groups["base_id"], info))
    return CvData(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in CvData.__dataclass_fields__})


def _table(source: str, data: EmbeddingSet, condition: np.ndarray, base: np.ndarray, info: dict) -> CvData:
    age, corpus, emotion = (np.array([info[b][j] for b in base], dtype=object).astype(str) for j in range(3))
    return CvData(x=data.x, y=data.y, speakers=np.char.add(f"{source}/", data.speakers.astype(str)),
                  ids=np.char.add(f"{source}/", data.ids.astype(str)), age_group=age, corpus=corpus,
                  condition=np.asarray(condition).astype(str), emotion=emotion,
                  base_id=np.char.add(f"{source}/", np.asarray(base).astype(str)))
