"""Hydra's configs for ``pkg://conf``: YAML only. The groups with a Python schema (``stream``,
``timeline_params``, ``quality``, ``speech``, ``trainer``, ``vad``) have no file here: the library
registers them (:mod:`src.config_store`, imported by every verb through :mod:`src.cli`)."""
