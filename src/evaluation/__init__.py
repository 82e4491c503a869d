"""How well a model does: metrics, temperature calibration and their figures. Shared by training,
``evaluate`` and ``analyze``; below all three, above ``models/`` and ``embeddings/``."""
