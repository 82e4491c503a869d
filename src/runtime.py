"""Process set-up every verb and every model worker does before working: the thread pools.

A leaf of the import graph (no ``src`` imports), so the serving workers, the training sweeps and
the verbs all reach it without depending on ``building``.
"""

from __future__ import annotations

import torch


def set_threads(num_threads: int | None) -> None:
    """Use ``num_threads`` for torch and for the BLAS/OpenMP pools numpy and librosa use
    (``None`` or 0 leaves the defaults).

    OpenBLAS' idle threads spin: with 2 of them Resemblyzer's mel features burn a second
    core for no speed-up, which starves the decode+VAD thread that should run beside it.
    """
    if num_threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(int(num_threads))
        threadpool_limits(int(num_threads))
