"""The label list, defined once for the whole toolkit."""

CLASSES: tuple[str, ...] = ("female", "male")
"""Class names in index order: index 0 is ``female``, index 1 is ``male``."""

UNKNOWN = "unknown"
"""Answer given when there is no speech or the confidence is under the threshold."""

MIXED = "mixed"
"""A whole stream's answer when no label has a clear majority of its speaking time."""

LABEL_COLOURS: dict[str, str] = {"female": "#8e5bd6", "male": "#138a7a", UNKNOWN: "#a3a3a8", MIXED: "#d08a2c"}
"""One colour per answer, everywhere: the web page (``/healthz`` hands them to it), the plots and the UMAP."""

SPLITS: tuple[str, ...] = ("train", "val", "test")

_ALIASES = {
    "female": "female", "f": "female", "woman": "female", "female_feminine": "female",
    "male": "male", "m": "male", "man": "male", "male_masculine": "male",
}


def normalise_gender(value: str) -> str | None:
    """Map a corpus' gender spelling to ``female``/``male``; ``None`` for anything else."""
    return _ALIASES.get(str(value).strip().lower())


def class_index(gender: str) -> int:
    """Index of ``gender`` in :data:`CLASSES`."""
    return CLASSES.index(gender)

AGE_GROUPS: tuple[str, ...] = ("child", "teen", "adult")
"""Age groups in index order: child 6-12 (under 13), teen 13-17, adult 18+ (speechocean762's bands)."""


def age_group_of(age_years: float | None) -> str | None:
    """The age group of an age in years; ``None`` when the age is unknown (None or NaN)."""
    if age_years is None or age_years != age_years:
        return None
    return "child" if age_years < 13 else "teen" if age_years < 18 else "adult"
