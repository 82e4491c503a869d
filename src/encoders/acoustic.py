"""Hand-crafted acoustic features of the VAD speech, as an encoder (``encoder=acoustic``), 222-d.

Computed at 16 kHz on the speech Silero kept (the extraction pipeline's input), one
vector per clip. Layout (indices inclusive; the same table is in ``conf/encoder/acoustic.yaml``):

========  =====  ==================================================================
index     count  feature
========  =====  ==================================================================
0-39      40     MFCC 0-39 means (librosa, 128 mels, n_fft 512 = 32 ms, hop 160 = 10 ms)
40-79     40     MFCC 0-39 standard deviations
80-207    128    log mean mel spectrum: dB of the time-mean mel power, 128 bands, 0-8 kHz
208       1      F0 median, Hz (voiced frames; 0 when no frame is voiced)
209       1      F0 interquartile range, Hz (0 when unvoiced)
210       1      voiced ratio: voiced frames / frames
211-213   3      F1, F2, F3 medians, Hz (LPC roots; 0 when none was found)
214       1      spectral centroid mean, Hz
215-221   7      spectral contrast means, dB (6 bands + the valley row, librosa defaults)
========  =====  ==================================================================

F0: ``f0_method=pyin`` (librosa.pyin, fmin 50 Hz, fmax 500 Hz, its own voicing
decision) or ``yin`` (the default: librosa.yin with a voicing heuristic: frames within
25 dB of the clip's loudest, an F0 within 10 % of its 5-frame median and away from the
search limits). Measured on 16 sample clips on a shared 2-core machine, the whole
encoder runs about 26x real time with yin and 5x with pyin (hop 512 = 32 ms, frame
1024); pyin is the more principled voicing decision but no better on our sample.

Formants: frames of 25 ms every 20 ms, resampled to 11 kHz (so formants up to 5.5 kHz,
Praat's default for a mixed population), pre-emphasised, Hamming-windowed, LPC of order
12 (``librosa.lpc``); the roots' angles are frequencies, their radii bandwidths; candidates
between 90 Hz and 5 kHz with a bandwidth under 400 Hz, lowest three per frame, median over
frames within 25 dB of the loudest.
"""

from __future__ import annotations

import logging

import numpy as np

from src.data.audio import SAMPLE_RATE_HZ
from src.encoders.base import centred_piece, window_groups

log = logging.getLogger(__name__)

N_MFCC = 40
N_MELS = 128
N_CONTRAST = 7
MFCC_MEAN = slice(0, 40)
MFCC_STD = slice(40, 80)
LOG_MEL = slice(80, 208)
F0_MEDIAN_INDEX = 208
F0_IQR_INDEX = 209
VOICED_RATIO_INDEX = 210
FORMANTS = slice(211, 214)
CENTROID_INDEX = 214
CONTRAST = slice(215, 222)
DIM = 222
LOUD_DB = 25.0  # frames within this many dB of the clip's loudest count for voicing and formants
LONG_S = 120.0  # a wave longer than this is computed in blocks (blocked_features)
BLOCK_S = 30.0  # ... of this many seconds
WINDOW_BLOCK_S = 30.0  # AcousticEncoder.embed_slices: the frames of at most this much of the signal at a time
TOP_DB = 80.0  # librosa.power_to_db's default floor below the maximum (MFCC, spectral contrast)


def _frame_db(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    import librosa

    rms = librosa.feature.rms(y=y, frame_length=frame_length, hop_length=hop_length)[0]
    return 20 * np.log10(np.maximum(rms, 1e-10))


def f0_stats(y: np.ndarray, sr: int, method: str = "yin", fmin_hz: float = 50.0, fmax_hz: float = 500.0,
             frame_length: int = 1024, hop_length: int = 512) -> tuple[float, float, float]:
    """(median F0 Hz, F0 IQR Hz, voiced ratio) of one waveform; (0, 0, 0) when nothing is voiced."""
    import librosa
    from scipy.ndimage import median_filter

    if method == "pyin":
        f0, voiced, _ = librosa.pyin(y, fmin=fmin_hz, fmax=fmax_hz, sr=sr, frame_length=frame_length,
                                     hop_length=hop_length, center=True)
        voiced = voiced & np.isfinite(f0)
    elif method == "yin":
        f0 = librosa.yin(y, fmin=fmin_hz, fmax=fmax_hz, sr=sr, frame_length=frame_length, hop_length=hop_length,
                         center=True)
        db = _frame_db(y, frame_length, hop_length)[:len(f0)]
        loud = np.zeros(len(f0), bool)
        loud[:len(db)] = db >= db.max() - LOUD_DB
        smooth = median_filter(f0, size=5, mode="nearest")
        stable = np.abs(f0 / np.maximum(smooth, 1e-6) - 1) < 0.1  # unvoiced frames give an erratic F0
        voiced = loud & stable & (f0 > fmin_hz * 1.05) & (f0 < fmax_hz * 0.95)
    else:
        raise ValueError(f"f0_method={method!r}: pyin or yin")
    if not voiced.any():
        return 0.0, 0.0, 0.0
    v = f0[voiced]
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(med), float(q3 - q1), float(voiced.mean())


def formant_medians(y: np.ndarray, sr: int, lpc_rate_hz: int = 11_000, order: int = 12,
                    n_formants: int = 3) -> np.ndarray:
    """Median F1..Fn in Hz over the loud frames (LPC root solving); 0 where none was found."""
    import librosa

    x = librosa.resample(y, orig_sr=sr, target_sr=lpc_rate_hz)
    x = librosa.effects.preemphasis(x, coef=0.97)
    flen, hop = int(0.025 * lpc_rate_hz), int(0.020 * lpc_rate_hz)
    if len(x) < flen:
        return np.zeros(n_formants)
    frames = librosa.util.frame(x, frame_length=flen, hop_length=hop, axis=0)  # (n, flen)
    db = 20 * np.log10(np.maximum(np.sqrt((frames ** 2).mean(1)), 1e-10))
    frames = frames[db >= db.max() - LOUD_DB] * np.hamming(flen)
    return _formants_of_frames(frames, lpc_rate_hz, order, n_formants)


def _lpc_rows(frames: np.ndarray, order: int) -> np.ndarray:
    """LPC coefficients of each row (a tiny fixed dither keeps silent rows solvable), one row each.

    All rows in one ``librosa.lpc`` call; when that call fails (one ill-conditioned row fails the
    batch), row by row, dropping the rows that fail, as one call per row would."""
    return _lpc_rows_kept(frames, order)[0]


def _lpc_rows_kept(frames: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_lpc_rows` and the indices of the rows it kept."""
    import librosa

    x = frames.astype(np.float64) + 1e-9 * np.random.default_rng(0).standard_normal(frames.shape[1])
    try:
        a = librosa.lpc(x, order=order, axis=-1)
        if np.isfinite(a).all():
            return a, np.arange(len(x))
    except (FloatingPointError, ValueError):
        pass
    rows, kept = [], []
    for i, fr in enumerate(x):
        try:
            rows.append(librosa.lpc(fr, order=order))
            kept.append(i)
        except (FloatingPointError, ValueError):
            continue
    return (np.array(rows) if rows else np.zeros((0, order + 1))), np.array(kept, int)


def _candidates(frames: np.ndarray, lpc_rate_hz: int, order: int, n_formants: int) -> np.ndarray:
    """The lowest ``n_formants`` formant candidates of each windowed frame, (frames, n_formants) Hz:
    its LPC polynomial's roots as the eigenvalues of its companion matrix (what ``np.roots`` does,
    all frames in one ``eigvals`` call); inf where fewer were found, NaN for a frame whose LPC failed."""
    out = np.full((len(frames), n_formants), np.nan)
    a, kept = _lpc_rows_kept(frames, order)
    if len(a) == 0:
        return out
    companion = np.zeros((len(a), order, order))
    companion[:, 0, :] = -a[:, 1:] / a[:, :1]
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    roots = np.linalg.eigvals(companion)
    freq = np.angle(roots) * lpc_rate_hz / (2 * np.pi)
    bw = -lpc_rate_hz / np.pi * np.log(np.maximum(np.abs(roots), 1e-12))
    ok = (np.imag(roots) > 0) & (freq > 90) & (freq < 5000) & (bw < 400)
    out[kept] = np.sort(np.where(ok, freq, np.inf), axis=1)[:, :n_formants]
    return out


def _formants_of_frames(frames: np.ndarray, lpc_rate_hz: int, order: int, n_formants: int) -> np.ndarray:
    """Median F1..Fn over windowed frames (:func:`_candidates`; frames with fewer than ``n_formants``
    candidates, or whose LPC failed, left out)."""
    if len(frames) == 0:
        return np.zeros(n_formants)
    cand = _candidates(frames, lpc_rate_hz, order, n_formants)
    found = cand[np.isfinite(cand).all(axis=1)]
    return np.median(found, axis=0) if len(found) else np.zeros(n_formants)


class AcousticEncoder:
    """(B,) waveforms at 16 kHz -> (B, 222) hand-crafted features (layout in the module docstring).

    Args:
        device: accepted for the common encoder interface; librosa runs on the CPU.
        f0_method: ``yin`` (fast, heuristic voicing, ~26x real time) or ``pyin`` (~5x real time).
        f0_fmin_hz, f0_fmax_hz: the F0 search range.
        f0_hop_length: F0 hop in samples at 16 kHz (512 = 32 ms).
    """

    name = "acoustic"
    dim = DIM
    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, device: str = "cpu", f0_method: str = "yin", f0_fmin_hz: float = 50.0,
                 f0_fmax_hz: float = 500.0, f0_hop_length: int = 512):
        import librosa

        if f0_method not in ("pyin", "yin"):
            raise ValueError(f"f0_method={f0_method!r}: pyin or yin")
        self.f0_method, self.f0_fmin_hz, self.f0_fmax_hz, self.f0_hop_length = (f0_method, f0_fmin_hz, f0_fmax_hz,
                                                                                f0_hop_length)
        self.identity = (f"librosa {librosa.__version__} acoustic v1: mfcc40 mean/std, logmel128, "
                         f"f0 {f0_method} {f0_fmin_hz:g}-{f0_fmax_hz:g} Hz hop {f0_hop_length}, lpc formants, "
                         f"centroid, contrast")

    def features(self, wave: np.ndarray) -> np.ndarray:
        """One 16 kHz waveform -> (222,) float32. A wave longer than ``LONG_S`` (with ``yin``) is
        computed in blocks (:func:`blocked_features`): the same frames, its memory bounded."""
        import librosa

        y = np.asarray(wave, np.float32)
        sr = SAMPLE_RATE_HZ
        if len(y) > LONG_S * sr and self.f0_method == "yin":
            return blocked_features(y, self.f0_fmin_hz, self.f0_fmax_hz, self.f0_hop_length)
        stft = np.abs(librosa.stft(y, n_fft=512, hop_length=160))
        mel = librosa.feature.melspectrogram(S=stft ** 2, sr=sr, n_mels=N_MELS)  # = from y with n_fft 512, hop 160
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
        centroid = librosa.feature.spectral_centroid(S=stft, sr=sr)[0]
        contrast = librosa.feature.spectral_contrast(S=stft, sr=sr, fmin=100.0)
        out = np.zeros(DIM, np.float32)
        out[MFCC_MEAN], out[MFCC_STD] = mfcc.mean(1), mfcc.std(1)
        out[LOG_MEL] = librosa.power_to_db(mel.mean(1), ref=1.0, amin=1e-10)
        out[F0_MEDIAN_INDEX], out[F0_IQR_INDEX], out[VOICED_RATIO_INDEX] = f0_stats(
            y, sr, self.f0_method, self.f0_fmin_hz, self.f0_fmax_hz, hop_length=self.f0_hop_length)
        out[FORMANTS] = formant_medians(y, sr)
        out[CENTROID_INDEX] = centroid.mean()
        out[CONTRAST] = contrast.mean(1)
        return out

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """(B,) waveforms at 16 kHz -> (B, 222) float32."""
        return np.stack([self.features(w) for w in waves]).astype(np.float32)

    def embed_slices(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
        """The features of ``signal[a:b]`` for each ``(a, b)`` (samples) from frames computed ONCE
        over the signal (:class:`FrameFeatures`), each window summarising the frames that fall in it.

        A timeline scores overlapping 1.5 s windows every 0.5 s: :meth:`features` on each window
        computed every STFT, YIN and LPC frame three times and cost a quarter of the default model's
        time. The values are close to, not equal to, :meth:`features` on each slice: a window's
        edge frames here see the speech beside it (there, zeros), its frames lie on the signal's
        10 ms / 32 ms / 20 ms grids, and its DC offset is the whole signal's. Every floor that
        :meth:`features` takes relative to a clip's loudest frame (80 dB for MFCC and contrast,
        25 dB for voicing and formants) is taken per window here too. ``tests/test_timeline_windows.py``
        bounds the difference on real speech. ``f0_method=pyin``: :meth:`features` per window.

        Memory: the frames of at most ``WINDOW_BLOCK_S`` of speech at a time.
        """
        from src.encoders.base import Waves, without_dc

        if not bounds:
            return np.zeros((0, DIM), np.float32)
        if self.f0_method != "yin":
            return self.embed(Waves(len(bounds), lambda i: without_dc(signal[bounds[i][0]:bounds[i][1]])))
        if len(signal) <= WINDOW_BLOCK_S * SAMPLE_RATE_HZ:  # one block: the whole signal
            frames = self.frames(signal)
            return np.stack([frames.window(a, b) for a, b in bounds])
        out = np.zeros((len(bounds), DIM), np.float32)
        for group in window_groups(bounds, int(WINDOW_BLOCK_S * SAMPLE_RATE_HZ)):
            s0, s1 = bounds[group[0]][0], max(bounds[k][1] for k in group)
            frames = self.frames(signal[s0:s1])
            for k in group:
                out[k] = frames.window(bounds[k][0] - s0, bounds[k][1] - s0)
        return out

    def embed_with_slices(self, signal: np.ndarray, bounds: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """``(features(signal), embed_slices(signal, bounds))``, both from one :class:`FrameFeatures`
        of the signal when it is at most ``WINDOW_BLOCK_S`` long (``yin``): the whole signal's
        summary of those frames is :meth:`features`, bit for bit (``tests/test_timeline_windows.py``),
        so a timeline's frames cost nothing more than the whole answer's."""
        y = np.asarray(signal, np.float32)
        if self.f0_method != "yin" or len(y) > WINDOW_BLOCK_S * SAMPLE_RATE_HZ:
            return self.features(y), self.embed_slices(y, bounds)
        frames = self.frames(y)
        windows = np.stack([frames.window(a, b) for a, b in bounds]) if bounds else np.zeros((0, DIM), np.float32)
        return frames.window(0, len(y)), windows

    def frames(self, y: np.ndarray) -> FrameFeatures:
        """The :class:`FrameFeatures` of ``y`` with this encoder's F0 settings."""
        return FrameFeatures(np.asarray(y, np.float32), self.f0_fmin_hz, self.f0_fmax_hz, self.f0_hop_length)


class FrameFeatures:
    """The frames :meth:`AcousticEncoder.features` (``yin``) summarises, computed once over a
    signal, and :meth:`window`: any stretch of it summarised as :meth:`~AcousticEncoder.features`
    summarises a clip (:meth:`AcousticEncoder.embed_slices`)."""

    def __init__(self, y: np.ndarray, fmin_hz: float = 50.0, fmax_hz: float = 500.0, f0_hop: int = 512,
                 lpc_rate_hz: int = 11_000, order: int = 12):
        import librosa

        sr = SAMPLE_RATE_HZ
        self.fmin_hz, self.fmax_hz, self.f0_hop, self.lpc_rate_hz = fmin_hz, fmax_hz, f0_hop, lpc_rate_hz
        S = np.abs(librosa.stft(y, n_fft=512, hop_length=160))  # frame j centred on sample 160 j
        self.mel = librosa.feature.melspectrogram(S=S ** 2, sr=sr, n_mels=N_MELS)
        self.mel_db = librosa.power_to_db(self.mel, top_db=None)
        self.centroid = librosa.feature.spectral_centroid(S=S, sr=sr)[0]
        peak, valley = _peak_valley(S, sr)
        self.peak_db, self.valley_db = librosa.power_to_db(peak, top_db=None), librosa.power_to_db(valley, top_db=None)
        self.f0 = librosa.yin(y, fmin=fmin_hz, fmax=fmax_hz, sr=sr, frame_length=1024, hop_length=f0_hop,
                              center=True)  # frame k centred on sample f0_hop k
        self.f0_db = _frame_db(y, 1024, f0_hop)[:len(self.f0)]
        x = librosa.effects.preemphasis(librosa.resample(y, orig_sr=sr, target_sr=lpc_rate_hz), coef=0.97)
        self.flen, self.lpc_hop = int(0.025 * lpc_rate_hz), int(0.020 * lpc_rate_hz)  # frame f starts at lpc_hop f
        if len(x) >= self.flen:
            frames = librosa.util.frame(x, frame_length=self.flen, hop_length=self.lpc_hop, axis=0)
            self.lpc_db = 20 * np.log10(np.maximum(np.sqrt((frames ** 2).mean(1)), 1e-10))
            self.candidates = _candidates(frames * np.hamming(self.flen), lpc_rate_hz, order, 3)
        else:
            self.lpc_db, self.candidates = np.zeros(0), np.zeros((0, 3))

    def window(self, a: int, b: int) -> np.ndarray:
        """The 222 features of samples ``a:b``: the frames a clip of ``b - a`` samples would have,
        from the grid point nearest ``a`` on."""
        import librosa
        from scipy.ndimage import median_filter

        n = b - a
        out = np.zeros(DIM, np.float32)
        j0 = int(round(a / 160))
        J = slice(j0, min(self.mel.shape[1], j0 + 1 + n // 160))
        log_mel = self.mel_db[:, J]
        mfcc = librosa.feature.mfcc(S=np.maximum(log_mel, log_mel.max() - TOP_DB), n_mfcc=N_MFCC)
        out[MFCC_MEAN], out[MFCC_STD] = mfcc.mean(1), mfcc.std(1)
        out[LOG_MEL] = librosa.power_to_db(self.mel[:, J].mean(1), ref=1.0, amin=1e-10)
        out[CENTROID_INDEX] = self.centroid[J].mean()
        peak, valley = self.peak_db[:, J], self.valley_db[:, J]
        out[CONTRAST] = (np.maximum(peak, peak.max() - TOP_DB) - np.maximum(valley, valley.max() - TOP_DB)).mean(1)
        k0 = int(round(a / self.f0_hop))
        f0 = self.f0[k0:k0 + 1 + n // self.f0_hop]
        db = self.f0_db[k0:k0 + len(f0)]
        if len(f0) and len(db) == len(f0):
            smooth = median_filter(f0, size=5, mode="nearest")
            stable = np.abs(f0 / np.maximum(smooth, 1e-6) - 1) < 0.1
            voiced = (db >= db.max() - LOUD_DB) & stable & (f0 > self.fmin_hz * 1.05) & (f0 < self.fmax_hz * 0.95)
            if voiced.any():
                q1, med, q3 = np.percentile(f0[voiced], [25, 50, 75])
                out[F0_MEDIAN_INDEX], out[F0_IQR_INDEX], out[VOICED_RATIO_INDEX] = med, q3 - q1, voiced.mean()
        scale = self.lpc_rate_hz / SAMPLE_RATE_HZ
        m = int(np.ceil(n * scale))  # the clip's length at the LPC rate
        count = 0 if m < self.flen else 1 + (m - self.flen) // self.lpc_hop
        f0_ = int(round(a * scale / self.lpc_hop))
        db, cand = self.lpc_db[f0_:f0_ + count], self.candidates[f0_:f0_ + count]
        if len(db):
            c = cand[db >= db.max() - LOUD_DB]
            found = c[np.isfinite(c).all(axis=1)]
            if len(found):
                out[FORMANTS] = np.median(found, axis=0)
        return out


def _peak_valley(S: np.ndarray, sr: int, fmin: float = 100.0, n_bands: int = 6, quantile: float = 0.02):
    """``librosa.feature.spectral_contrast``'s peak and valley energies per band and frame (its own
    code, before ``power_to_db``, whose floor is relative to the whole input's maximum)."""
    import librosa

    freq = librosa.fft_frequencies(sr=sr, n_fft=2 * (S.shape[-2] - 1))
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    valley = np.zeros((n_bands + 1, S.shape[-1]))
    peak = np.zeros_like(valley)
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        current_band = np.logical_and(freq >= f_low, freq <= f_high)
        idx = np.flatnonzero(current_band)
        if k > 0:
            current_band[idx[0] - 1] = True
        if k == n_bands:
            current_band[idx[-1] + 1:] = True
        sub_band = S[..., current_band, :]
        if k < n_bands:
            sub_band = sub_band[..., :-1, :]
        idx = int(np.maximum(np.rint(quantile * np.sum(current_band)), 1))
        sortedr = np.sort(sub_band, axis=-2)
        valley[k, :] = np.mean(sortedr[..., :idx, :], axis=-2)
        peak[k, :] = np.mean(sortedr[..., -idx:, :], axis=-2)
    return peak, valley


class _Moments:
    """Running count, mean and sum of squared deviations per row (Chan et al.'s merge), in float64."""

    def __init__(self, rows: int):
        self.n, self.mean, self.m2 = 0, np.zeros(rows), np.zeros(rows)

    def add(self, x: np.ndarray) -> None:  # x: (rows, frames)
        k = x.shape[1]
        if not k:
            return
        m = x.mean(axis=1, dtype=np.float64)
        m2 = ((x - m[:, None]) ** 2).sum(axis=1, dtype=np.float64)
        d, n = m - self.mean, self.n + k
        self.mean = self.mean + d * k / n
        self.m2 = self.m2 + m2 + d ** 2 * self.n * k / n
        self.n = n

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n, 1))


def blocked_features(y: np.ndarray, fmin_hz: float = 50.0, fmax_hz: float = 500.0, f0_hop: int = 512,
                     block_s: float = BLOCK_S) -> np.ndarray:
    """:meth:`AcousticEncoder.features` (``yin``) of a long wave in blocks of ``block_s`` seconds,
    holding one block's frames at a time instead of the whole wave's (the whole-wave STFT, YIN
    frames and LPC matrices of an hour of speech took several GB). Every frame is the one the
    whole-wave call computes (centred framing rebuilt per block, the 11 kHz resampling and the
    pre-emphasis streamed with their state carried over); what needs the whole wave is kept per
    frame (F0, frame levels, formant candidates: a few MB per hour) or done in two passes (the
    80 dB floors of ``power_to_db`` under the whole wave's maximum: the STFT is computed twice).
    Only the means and standard deviations over frames are summed differently (float64, block by
    block, instead of float32 pairwise), so values agree to about 1e-6 relative
    (``tests/test_long_memory.py``)."""
    import librosa
    from scipy.ndimage import median_filter

    sr = SAMPLE_RATE_HZ
    out = np.zeros(DIM, np.float32)
    # -- STFT features: 512-point frames every 160 samples, two passes
    n_fft, hop = 512, 160
    n = 1 + len(y) // hop
    step = max(1, int(block_s * sr) // hop)

    def spectra():
        for f0 in range(0, n, step):
            f1 = min(n, f0 + step)
            S = np.abs(librosa.stft(centred_piece(y, f0, f1, n_fft, hop), n_fft=n_fft, hop_length=hop,
                                    center=False))
            yield S, librosa.feature.melspectrogram(S=S ** 2, sr=sr, n_mels=N_MELS)

    mel_top, peak_top, valley_top = -np.inf, -np.inf, -np.inf
    mel_sum, centroid_sum = np.zeros(N_MELS), 0.0
    for S, mel in spectra():
        mel_top = max(mel_top, librosa.power_to_db(mel, top_db=None).max())
        mel_sum += mel.sum(axis=1, dtype=np.float64)
        centroid_sum += librosa.feature.spectral_centroid(S=S, sr=sr)[0].sum(dtype=np.float64)
        peak, valley = _peak_valley(S, sr)
        peak_top = max(peak_top, librosa.power_to_db(peak, top_db=None).max())
        valley_top = max(valley_top, librosa.power_to_db(valley, top_db=None).max())
    mfcc, contrast = _Moments(N_MFCC), _Moments(N_CONTRAST)
    for S, mel in spectra():
        log_mel = np.maximum(librosa.power_to_db(mel, top_db=None), mel_top - TOP_DB)
        mfcc.add(librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC))
        peak, valley = _peak_valley(S, sr)
        contrast.add(np.maximum(librosa.power_to_db(peak, top_db=None), peak_top - TOP_DB)
                     - np.maximum(librosa.power_to_db(valley, top_db=None), valley_top - TOP_DB))
    out[MFCC_MEAN], out[MFCC_STD] = mfcc.mean, mfcc.std()
    out[LOG_MEL] = librosa.power_to_db((mel_sum / n).astype(np.float32), ref=1.0, amin=1e-10)
    out[CENTROID_INDEX] = centroid_sum / n
    out[CONTRAST] = contrast.mean
    # -- F0 (YIN) and frame levels: 1024-sample frames every f0_hop, kept per frame
    flen = 1024
    nf = 1 + len(y) // f0_hop
    step = max(1, int(block_s * sr) // f0_hop)
    f0s, dbs = [], []
    for a in range(0, nf, step):
        piece = centred_piece(y, a, min(nf, a + step), flen, f0_hop)
        f0s.append(librosa.yin(piece, fmin=fmin_hz, fmax=fmax_hz, sr=sr, frame_length=flen, hop_length=f0_hop,
                               center=False))
        rms = librosa.feature.rms(y=piece, frame_length=flen, hop_length=f0_hop, center=False)[0]
        dbs.append(20 * np.log10(np.maximum(rms, 1e-10)))
    f0, db = np.concatenate(f0s), np.concatenate(dbs)[:nf]
    loud = np.zeros(len(f0), bool)
    loud[:len(db)] = db >= db.max() - LOUD_DB
    smooth = median_filter(f0, size=5, mode="nearest")
    stable = np.abs(f0 / np.maximum(smooth, 1e-6) - 1) < 0.1
    voiced = loud & stable & (f0 > fmin_hz * 1.05) & (f0 < fmax_hz * 0.95)
    if voiced.any():
        q1, med, q3 = np.percentile(f0[voiced], [25, 50, 75])
        out[F0_MEDIAN_INDEX], out[F0_IQR_INDEX], out[VOICED_RATIO_INDEX] = med, q3 - q1, voiced.mean()
    out[FORMANTS] = blocked_formants(y, block_s)
    return out


def blocked_formants(y: np.ndarray, block_s: float = BLOCK_S, lpc_rate_hz: int = 11_000, order: int = 12,
                     n_formants: int = 3) -> np.ndarray:
    """:func:`formant_medians` block by block: the 11 kHz signal streamed through soxr (the same
    samples as ``librosa.resample``'s one call, zero-padded to its length), pre-emphasised with the
    filter state carried over, framed as one signal; LPC only for the frames within ``LOUD_DB`` of
    the loudest so far (a superset of the final loud frames), the candidates kept per frame, the
    median over the loud ones at the end."""
    import librosa
    import soxr

    flen, hop = int(0.025 * lpc_rate_hz), int(0.020 * lpc_rate_hz)
    total = int(np.ceil(len(y) * lpc_rate_hz / SAMPLE_RATE_HZ))  # librosa.resample's length (fix_length)
    if total < flen:
        return np.zeros(n_formants)
    stream = soxr.ResampleStream(SAMPLE_RATE_HZ, lpc_rate_hz, 1, dtype="float32", quality="soxr_hq")
    window = np.hamming(flen)
    pending = np.zeros(0, np.float32)  # pre-emphasised samples from the next frame's start on
    made, zi, top = 0, None, -np.inf
    dbs, cands = [], []
    step = int(block_s * SAMPLE_RATE_HZ)
    starts = list(range(0, len(y), step))
    for j, lo in enumerate(starts):
        last = j == len(starts) - 1
        x = stream.resample_chunk(y[lo:lo + step], last=last)[:total - made]
        if last and made + len(x) < total:
            x = np.concatenate([x, np.zeros(total - made - len(x), np.float32)])
        made += len(x)
        if len(x):
            if zi is None:  # librosa's initial state, from the first two samples
                x, zi = librosa.effects.preemphasis(x, coef=0.97, return_zf=True)
            else:
                x, zi = librosa.effects.preemphasis(x, coef=0.97, zi=zi, return_zf=True)
            pending = np.concatenate([pending, x])
        k = 0 if len(pending) < flen else 1 + (len(pending) - flen) // hop
        if not k:
            continue
        frames = librosa.util.frame(pending[:(k - 1) * hop + flen], frame_length=flen, hop_length=hop, axis=0)
        db = 20 * np.log10(np.maximum(np.sqrt((frames ** 2).mean(1)), 1e-10))
        top = max(top, db.max())
        use = db >= top - LOUD_DB
        c = np.full((k, n_formants), np.nan)
        if use.any():
            c[use] = _candidates(frames[use] * window, lpc_rate_hz, order, n_formants)
        dbs.append(db)
        cands.append(c)
        pending = pending[k * hop:].copy()
    db, c = np.concatenate(dbs), np.concatenate(cands)
    c = c[db >= db.max() - LOUD_DB]
    found = c[np.isfinite(c).all(axis=1)]
    return np.median(found, axis=0) if len(found) else np.zeros(n_formants)
