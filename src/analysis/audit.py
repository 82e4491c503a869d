"""Label audit: clips and speakers whose gender label disagrees with out-of-fold predictions
(confident learning, Northcutt et al. 2021, through ``cleanlab``), for a person to check by ear
before the labels are trusted either way.

Out-of-fold probabilities come from a balanced logistic regression on standardised embeddings,
cross-validated with speaker-grouped folds (a speaker is never scored by a model that saw it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from src.embeddings.dataset import EmbeddingSet
from src.labels import CLASSES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditParams:
    """``conf/audit.yaml``: folds of the out-of-fold scoring, its seed, and when a speaker is listed."""

    folds: int = 5
    seed: int = 0
    speaker_share: float = 0.5  # a speaker is listed when at least this share of its clips is flagged


def out_of_fold_proba(data: EmbeddingSet, folds: int, seed: int) -> np.ndarray:
    """(N, 2) probabilities of each clip from a model trained without its speaker."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, class_weight="balanced"))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, data.x, data.y, groups=data.speakers, cv=cv, method="predict_proba")


def audit(data: EmbeddingSet, params: AuditParams = AuditParams()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clips, speakers): every clip with its out-of-fold p(label), cleanlab's verdict and quality
    score; the speakers with at least ``speaker_share`` of their clips flagged, worst first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    proba = out_of_fold_proba(data, params.folds, params.seed)
    issue = find_label_issues(data.y, proba)
    clips = pd.DataFrame({
        "id": data.ids, "path": data.paths, "speaker": data.speakers, "label": np.array(CLASSES)[data.y],
        "p_label": proba[np.arange(len(data)), data.y].round(4),
        "predicted": np.array(CLASSES)[proba.argmax(1)], "label_issue": issue,
        "quality": get_label_quality_scores(data.y, proba).round(4),
        **{g: v for g, v in data.groups.items()}})
    per = clips.groupby("speaker").agg(label=("label", "first"), clips=("id", "size"),
                                       flagged=("label_issue", "sum"), p_label_mean=("p_label", "mean"),
                                       called_other=("predicted", lambda s: 0))
    per["called_other"] = clips.assign(o=clips.predicted != clips.label).groupby("speaker")["o"].sum()
    per["flagged_share"] = per.flagged / per.clips
    per["example_path"] = clips.sort_values("p_label").groupby("speaker")["path"].first()
    for g in data.groups:
        per[g] = clips.groupby("speaker")[g].first()
    speakers = (per[per.flagged_share >= params.speaker_share].sort_values(["flagged_share", "p_label_mean"],
                                                                           ascending=[False, True])
                .reset_index())
    log.info("%d of %d clips flagged; %d of %d speakers with >= %.0f%% of their clips flagged",
             int(issue.sum()), len(clips), len(speakers), len(per), 100 * params.speaker_share)
    return clips, speakers


def f0_medians(paths: list[str]) -> list[float | None]:
    """Median F0 in Hz of each file (librosa's YIN with the acoustic encoder's voicing rule), None when unreadable."""
    from src.data.audio import AudioError, load_audio
    from src.encoders.acoustic import SAMPLE_RATE_HZ, f0_stats

    out: list[float | None] = []
    for p in paths:
        try:
            f0 = f0_stats(load_audio(p, SAMPLE_RATE_HZ), SAMPLE_RATE_HZ)[0]
            out.append(round(f0, 1) if f0 > 0 else None)
        except AudioError:
            out.append(None)
    return out


def write_audit(clips: pd.DataFrame, speakers: pd.DataFrame, out: Path, title: str) -> Path:
    """``out.csv`` (every clip), ``out-speakers.csv`` and ``out.md`` (the listed speakers, with links)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    clips.sort_values("quality").to_csv(out.with_suffix(".csv"), index=False)
    speakers.to_csv(out.parent / f"{out.name}-speakers.csv", index=False)
    table = speakers.assign(listen=[f"[{Path(p).name}]({Path(p).resolve().as_uri()})" for p in speakers.example_path])
    cols = [c for c in ("speaker", "label", "clips", "flagged", "called_other", "p_label_mean", "f0_median_hz",
                        "corpus", "age_group", "listen") if c in table.columns]
    md = [f"# Label audit: {title}", "",
          f"{int(clips.label_issue.sum())} of {len(clips)} clips flagged by confident learning; "
          f"{len(speakers)} speaker(s) listed (most of their clips flagged). Listen before trusting either label; "
          "to leave reviewed speakers out of training: "
          f"`python -m src.train exclude_path={out.parent / (out.name + '-speakers.csv')}`.",
          "", table[cols].round(3).to_markdown(index=False) if len(table) else "(none)", ""]
    out.with_suffix(".md").write_text("\n".join(md))
    return out.with_suffix(".md")
