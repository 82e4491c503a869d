"""openSMILE's eGeMAPS v02 functionals (``encoder=egemaps``), 88-d: the standard minimal
parameter set of paralinguistics (Eyben et al. 2016).

F0 (semitones from 27.5 Hz: mean, spread, percentiles, slopes), formants F1-F3 (frequency,
bandwidth, relative amplitude), jitter, shimmer, HNR, spectral slope, alpha ratio,
Hammarberg index, MFCC 1-4, loudness, and rates of voiced segments, computed by openSMILE's
C++ engine (the binary ships in the ``opensmile`` wheel) on the VAD speech.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

import numpy as np

from src.data.audio import SAMPLE_RATE_HZ
from src.encoders.base import window_groups

DIM = 88
SLICE_END_TRIM_S = 0.04  # a window's frame list entry ends this much early: its last LLD frames would reach past it
SLICE_END_MARGIN = 320  # ... and no later than this many samples before the signal's end (its last LLD frames)
LONG_S = 300.0  # longer speech is summarised in chunks of at most this (openSMILE holds ~1.3 GB per hour)
CONTEXT_S = 10.0  # a chunk of timeline windows reaches this much speech before and after its windows
FRAME_GRID = 160  # openSMILE's 10 ms frame step in samples: chunks start on it


class EgemapsEncoder:
    """(B,) waveforms at 16 kHz -> (B, 88) eGeMAPS v02 functionals.

    Args:
        device: accepted for the common encoder interface; openSMILE runs on the CPU.
    """

    name = "egemaps"
    dim = DIM
    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, device: str = "cpu"):
        import opensmile

        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.Functionals)
        if len(self.smile.feature_names) != DIM:
            raise ValueError(f"eGeMAPSv02 gave {len(self.smile.feature_names)} features, expected {DIM}")
        self.identity = f"opensmile {opensmile.__version__} eGeMAPSv02 functionals"

    def feature_names(self) -> list[str]:
        """The 88 column names, in order (openSMILE's own)."""
        return list(self.smile.feature_names)

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(B,) waveforms at 16 kHz -> (B, 88) float32 (non-finite values, e.g. of an unvoiced clip, become 0)."""
        out = np.stack([self.functionals(w) for w in waves]).astype(np.float32)
        return _finite(out)

    def functionals(self, wave: np.ndarray) -> np.ndarray:
        """One wave's 88 functionals (NaN where openSMILE gives none). Longer than ``LONG_S``: in
        equal chunks of at most ``LONG_S`` (:func:`combine_chunks`), because openSMILE keeps the
        whole input and its intermediate levels (about 1.3 GB per hour of speech, with the Python
        wrapper's copies)."""
        wave = np.asarray(wave, np.float32)
        n = len(wave)
        if n <= LONG_S * SAMPLE_RATE_HZ:
            return self.smile.process_signal(wave, SAMPLE_RATE_HZ).to_numpy()[0]
        edges = chunk_edges(n)
        rows = np.stack([self.smile.process_signal(wave[a:b], SAMPLE_RATE_HZ).to_numpy()[0]
                         for a, b in zip(edges[:-1], edges[1:])]).astype(np.float64)
        return combine_chunks(rows, np.diff(edges).astype(np.float64), self.feature_names())

    def embed_slices(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
        """The functionals of ``signal[a:b]`` for each ``(a, b)`` (samples) from ONE openSMILE pass:
        the low-level descriptors are computed once over the whole signal and openSMILE's own
        functionals component summarises them per window (``frameMode = list``).

        A timeline scores overlapping 1.5 s windows every 0.5 s: one ``process_signal`` per window
        cost ~26 ms (5 ms of it setting openSMILE up) and computed every descriptor three times; this
        is ~4x faster. The values are close to ``embed`` on each slice, not equal: here a window's
        first descriptor frames see the speech before it (``embed`` sees silence), and its frames
        are openSMILE's 10 ms grid. With the shipped default model on 5 minutes of dev clips joined
        (432 windows) the windows' p(male) moved by 0.031 on average (99th percentile 0.34), 95.6 %
        kept their label and the timeline was as often right (``tests/test_timeline_windows.py``).
        The windows reaching the signal's end stop ``SLICE_END_MARGIN`` samples before it, where
        openSMILE's last descriptor frames end.
        """
        if not bounds:
            return np.zeros((0, DIM), np.float32)
        if len(signal) > LONG_S * SAMPLE_RATE_HZ:
            return self._embed_slices_chunked(signal, bounds)
        return self._embed_slices_once(signal, bounds)

    def embed_with_slices(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """``(embed([signal])[0], embed_slices(signal, bounds))`` from ONE openSMILE run: the
        descriptors are computed once and summarised twice, over the whole signal (as
        :meth:`functionals` does) and per window (as :meth:`embed_slices` does), each by its own
        copy of eGeMAPS' functionals components (:func:`whole_and_window_config`). Both are bit for
        bit what the two calls give (``tests/test_timeline_windows.py``, ``tests/test_long_memory.py``),
        for half the openSMILE time of a timeline (the descriptors were the cost).

        Speech longer than ``LONG_S``: one such run per chunk of :meth:`functionals` (memory: one
        chunk's), giving that chunk's functionals and the windows at least ``CONTEXT_S`` inside it;
        the windows near an inner chunk edge are computed as :meth:`embed_slices` computes them,
        with ``CONTEXT_S`` of speech on each side.
        """
        signal = np.asarray(signal, np.float32)
        n, sr = len(signal), SAMPLE_RATE_HZ
        if not bounds:
            return self.embed([signal])[0], np.zeros((0, DIM), np.float32)
        if n <= LONG_S * sr:
            whole, windows = self._whole_and_windows(signal, bounds)
            return _finite(whole[None])[0], windows
        edges, ctx = chunk_edges(n), int(CONTEXT_S * sr)
        out, done, rows = np.zeros((len(bounds), DIM), np.float32), np.zeros(len(bounds), bool), []
        for a0, b0 in zip(edges[:-1], edges[1:]):
            lo, hi = (a0 + ctx if a0 > 0 else 0), (b0 - ctx if b0 < n else n)  # windows here need no more context
            inside = [i for i, (a, b) in enumerate(bounds) if lo <= a and b <= hi]
            whole, windows = self._whole_and_windows(signal[a0:b0], [(bounds[i][0] - a0, bounds[i][1] - a0)
                                                                     for i in inside])
            rows.append(whole)
            out[inside], done[inside] = windows, True
        rest = np.flatnonzero(~done)
        if len(rest):
            out[rest] = self._embed_slices_chunked(signal, [bounds[i] for i in rest])
        whole = combine_chunks(np.stack(rows).astype(np.float64), np.diff(edges).astype(np.float64),
                               self.feature_names())
        return _finite(whole.astype(np.float32)[None])[0], out

    def _whole_and_windows(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """One openSMILE run over ``signal``: its 88 functionals (NaN where openSMILE gives none, as
        ``process_signal``) and the windows' (:meth:`_embed_slices_once`'s numbers)."""
        from opensmile.core.lib import OpenSMILE

        if not bounds:  # (openSMILE refuses an empty frame list)
            return self.smile.process_signal(signal, SAMPLE_RATE_HZ).to_numpy()[0], np.zeros((0, DIM), np.float32)
        whole, windows = [], []
        with tempfile.TemporaryDirectory(prefix="egemaps-") as tmp:
            frame_list = Path(tmp) / "frame-list.conf.inc"
            frame_list.write_text(frame_list_conf(bounds, len(signal)))
            conf = Path(tmp) / "whole-and-windows.conf"
            conf.write_text(whole_and_window_config(str(frame_list)))
            smile = OpenSMILE()
            smile.initialize(config_file=str(conf), options=self._run_options(), loglevel=self.smile.loglevel)
            try:
                smile.external_sink_set_callback_ex(WHOLE_SINK, lambda data, _: whole.append(data.copy()))
                smile.external_sink_set_callback_ex(WINDOW_SINK, lambda data, _: windows.append(data.copy()))
                smile.external_audio_source_write_data(SOURCE, bytes((signal * 32768).astype(np.int16)))
                smile.external_audio_source_set_eoi(SOURCE)  # (as opensmile.Smile converts a signal)
                smile.run()
            finally:
                smile.free()
        row = np.asarray(whole[0], np.float32).reshape(DIM) if whole else np.full(DIM, np.nan, np.float32)
        if len(windows) != len(bounds):  # never seen; as _embed_slices_once
            return row, self._embed_slices_once(signal, bounds)
        return row, _finite(np.asarray(windows, np.float32).reshape(len(bounds), DIM))

    def _run_options(self) -> dict:
        """The options ``opensmile.Smile`` passes openSMILE for a signal (its source, the buffers,
        the default full-input frame mode)."""
        from opensmile.core.config import config

        root = Path(self.smile.default_config_root)
        return {"source": str(root / config.EXTERNAL_INPUT_CONFIG), "sampleRate": SAMPLE_RATE_HZ, "nBits": 16,
                "bufferModeRbConf": str(root / "shared" / "BufferModeRb.conf.inc"),
                "frameModeFunctionalsConf": str(root / "shared" / "FrameModeFunctionals.conf.inc")}

    def _embed_slices_chunked(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
        """:meth:`embed_slices` of a long signal in chunks of windows spanning at most ``LONG_S``,
        each chunk's openSMILE pass starting ``CONTEXT_S`` before its first window (on the 10 ms
        frame grid of the whole signal) and reaching ``CONTEXT_S`` past its last window:
        openSMILE's memory is one chunk's, not the whole speech's. With 10 s of context the
        windows came out equal to the one pass, bit for bit, on sample speech cut into 20 s chunks
        (with 2 s, the first four windows of each chunk differed: some descriptors remember
        seconds); ``tests/test_long_memory.py`` holds them to that.
        """
        sr, ctx = SAMPLE_RATE_HZ, int(CONTEXT_S * SAMPLE_RATE_HZ)
        out = np.zeros((len(bounds), DIM), np.float32)
        for group in window_groups(bounds, int(LONG_S * sr)):
            s0 = max(0, bounds[group[0]][0] - ctx) // FRAME_GRID * FRAME_GRID
            s1 = min(len(signal), max(bounds[k][1] for k in group) + ctx)  # the pitch smoother decides 40 frames late
            out[group] = self._embed_slices_once(signal[s0:s1], [(bounds[k][0] - s0, bounds[k][1] - s0) for k in group])
        return out

    def _embed_slices_once(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
        """One openSMILE pass over ``signal``, functionals per window (:func:`frame_list_conf`)."""
        import opensmile

        with tempfile.TemporaryDirectory(prefix="egemaps-") as tmp:
            conf = Path(tmp) / "frame-list.conf.inc"
            conf.write_text(frame_list_conf(bounds, len(signal)))
            smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                    feature_level=opensmile.FeatureLevel.Functionals,
                                    options={"frameModeFunctionalsConf": str(conf)})
            out = smile.process_signal(np.asarray(signal, np.float32), SAMPLE_RATE_HZ).to_numpy().astype(np.float32)
        if len(out) != len(bounds):  # never seen; the per-window calls are always right
            return self.embed([signal[a:b] for a, b in bounds])
        return _finite(out)


def chunk_edges(n_samples: int) -> np.ndarray:
    """The edges of :meth:`EgemapsEncoder.functionals`' chunks of a long signal: as equal as the
    10 ms frame grid allows (``FRAME_GRID``: a chunk's descriptor frames are the whole signal's),
    at most ``LONG_S`` each."""
    k = int(np.ceil(n_samples / (LONG_S * SAMPLE_RATE_HZ)))
    edges = np.linspace(0, n_samples, k + 1).astype(int) // FRAME_GRID * FRAME_GRID
    edges[-1] = n_samples
    return edges


def frame_list_conf(bounds: list[tuple[int, int]], n_samples: int) -> str:
    """openSMILE's frame-mode include for functionals over the windows ``bounds`` (samples) of a
    signal of ``n_samples``: each ends ``SLICE_END_TRIM_S`` early, and ``SLICE_END_MARGIN`` samples
    before the signal's end at the latest (its last descriptor frames would reach past either)."""
    sr, last = SAMPLE_RATE_HZ, n_samples - SLICE_END_MARGIN
    frames = ",".join(f"{a / sr:.4f}s-{max(a / sr + 0.01, min(b, last) / sr - SLICE_END_TRIM_S):.4f}s"
                      for a, b in bounds)
    return f"frameMode = list\nframeList = {frames}\nframeCenterSpecial = left\n"


SOURCE, WHOLE_SINK, WINDOW_SINK = "extsource", "extsink", "extsink_windows"
_COPIED = ("cFunctionals", "cDataSelector", "cVectorOperation")  # the components that summarise descriptors
_W = "_windows"  # the suffix of the window copies' component and level names


def whole_and_window_config(frame_list: str) -> str:
    """An openSMILE config: eGeMAPS v02 as the ``opensmile`` package ships it (descriptors, then
    functionals over the whole input, to the sink ``WHOLE_SINK``), plus a copy of its functionals
    components, every name and level suffixed, that takes the frame mode from ``frame_list``
    (:func:`frame_list_conf`) and writes to ``WINDOW_SINK``. Built from the package's own files,
    so it follows their version."""
    return _whole_and_window_template().replace(_FRAME_LIST, frame_list)


_FRAME_LIST = "@FRAME_LIST@"


@functools.lru_cache(maxsize=1)
def _whole_and_window_template() -> str:
    """:func:`whole_and_window_config` with ``_FRAME_LIST`` where the frame list's path goes."""
    import opensmile

    root = Path(opensmile.__file__).parent / "core" / "config"
    main = (root / "egemaps" / "v02" / "eGeMAPSv02.conf").read_text()
    main = main.replace("\\{../../gemaps/", "\\{" + str(root / "gemaps") + "/")
    main = main.replace("\\{eGeMAPSv02_core", "\\{" + str(root / "egemaps" / "v02") + "/eGeMAPSv02_core")
    parts = [(root / "gemaps" / "v01b" / "GeMAPSv01b_core.func.conf.inc").read_text(),
             (root / "egemaps" / "v02" / "eGeMAPSv02_core.func.conf.inc").read_text()]
    concat = re.search(r"\[funcconcat:cVectorConcat\](?:\n[^\n\\\[]+)+", main).group(0)
    names = {"funcconcat", "func"}
    copies = []
    for text in parts:
        types = dict(re.findall(r"(?m)^instance\[(\w+)\]\.type\s*=\s*(\w+)", text))
        copied = []  # (component name, its section) of the summarising components
        for sec in re.split(r"(?m)^(?=\[)", text):
            m = re.match(r"\[(\w+):(\w+)\]", sec)
            if m and m.group(2) in _COPIED:
                copied.append((m.group(1), sec))
                names.add(m.group(1))
                names.add(re.search(r"(?m)^writer\.dmLevel\s*=\s*(\S+)", sec).group(1))
        instances = "".join(f"instance[{name}{_W}].type={types[name]}\n" for name, _ in copied)
        copies.append("[componentInstances:cComponentManager]\n" + instances + "".join(sec for _, sec in copied))
    body = "\n".join(copies) + "\n" + concat + "\n"
    for name in sorted(names, key=len, reverse=True):
        body = re.sub(rf"(?<!\w){name}(?!\w)", name + _W, body)
    body = re.sub(r"\\\{\\cm\[frameModeFunctionalsConf[^\]]*\]\}", lambda _: "\\{" + _FRAME_LIST + "}", body)
    sinks = (f"[componentInstances:cComponentManager]\ninstance[funcconcat{_W}].type=cVectorConcat\n"
             f"instance[{WHOLE_SINK}].type=cExternalSink\ninstance[{WINDOW_SINK}].type=cExternalSink\n"
             f"{body}\n[{WHOLE_SINK}:cExternalSink]\nreader.dmLevel = func\nblocksize = 1\n"
             f"[{WINDOW_SINK}:cExternalSink]\nreader.dmLevel = func{_W}\nblocksize = 1\n")
    if "\\{\\cm[sink{?}:include external sink]}" not in main:
        raise RuntimeError("this opensmile version's eGeMAPSv02.conf has no sink include to replace")
    return main.replace("\\{\\cm[sink{?}:include external sink]}", sinks)


def combine_chunks(rows: np.ndarray, lengths: np.ndarray, names: list[str]) -> np.ndarray:
    """The functionals of a recording from its chunks' (``rows``, one per chunk of ``lengths``
    samples): an approximation. Each functional is the mean of the chunks' weighted by the frames it
    is taken over (the chunk's length; for the voiced-only ``...nz`` descriptors times the voiced
    share, ``VoicedSegmentsPerSec`` x ``MeanVoicedSegmentLengthSec``, for the unvoiced ``UV`` ones
    times the rest); each ``stddevNorm`` (standard deviation / mean) is pooled from the chunks'
    means and deviations, so the spread between chunks counts. Percentiles, slopes and rates are
    only averaged. NaN chunks are left out."""
    col = {n: i for i, n in enumerate(names)}
    voiced = np.ones(len(rows))
    if "VoicedSegmentsPerSec" in col and "MeanVoicedSegmentLengthSec" in col:
        share = rows[:, col["VoicedSegmentsPerSec"]] * rows[:, col["MeanVoicedSegmentLengthSec"]]
        voiced = np.clip(np.nan_to_num(share, nan=1.0), 0.0, 1.0)
    out = np.full(rows.shape[1], np.nan)
    for j, name in enumerate(names):
        share = (1.0 - voiced) if "UV" in name else voiced if "nz" in name else 1.0
        w = lengths * share * np.isfinite(rows[:, j])
        if w.sum() > 0:
            out[j] = float(np.nansum(rows[:, j] * w) / w.sum())
    for j, name in enumerate(names):  # pooled coefficients of variation
        mean_name = name.replace("_stddevNorm", "_amean")
        if not name.endswith("_stddevNorm") or mean_name not in col:
            continue
        m, c = rows[:, col[mean_name]], rows[:, j]
        share = (1.0 - voiced) if "UV" in name else voiced if "nz" in name else 1.0
        ok = np.isfinite(m) & np.isfinite(c)
        w = (lengths * share)[ok]
        if w.sum() <= 0:
            continue
        mu = float((m[ok] * w).sum() / w.sum())
        second = float((((c[ok] * m[ok]) ** 2 + m[ok] ** 2) * w).sum() / w.sum())
        out[j] = np.sqrt(max(second - mu ** 2, 0.0)) / mu if mu != 0 else np.nan
    return out


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
