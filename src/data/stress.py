"""The speaking-style and channel stress conditions: what a held-out speaker's clip becomes
when it is said angrily, fast, in one breath, over a phone, through a cheap codec, in a noisy
room or a reverberant one. ``python -m src.stress`` writes them; model selection reports and
optimises accuracy on each (``python -m src.study protocol=cv``).

Every function takes and returns 16 kHz mono float32 and is seeded by the caller's
``numpy.random.Generator``, so a clip and a seed always give the same audio.

- ``pitch``: formant-preserving F0 shift with Praat's PSOLA (``praat-parselmouth``: To Manipulation,
  Multiply frequencies of the pitch tier, overlap-add resynthesis). Men are **raised** by
  +2..+6 semitones and women **lowered** by -2..-4: an angry or excited man is still a man, a
  calm low-voiced woman is still a woman. These shifts stay inside each class's range; shifts
  that cross it (a man raised an octave) are not a speaking style and are not made here.
- ``fast`` / ``slow``: tempo x1.3 / x0.77 by PSOLA (Praat's Lengthen (overlap-add)), pitch kept.
- ``crop``: the loudest 1-2 s of the clip.
- ``telephone``: 300-3400 Hz, 8 kHz, 8-bit mu-law (G.711-like; :func:`src.data.augment.telephone`).
- ``opus``: Opus at 8 kbit/s (what voice apps send on a bad line), through PyAV's FFmpeg.
- ``amr``: AMR-NB at 12.2 kbit/s, 8 kHz (the mobile-phone codec), through PyAV's FFmpeg.
- ``noise``: coloured noise (white to brown) at 5-20 dB SNR.
- ``babble``: 3-6 other speakers at 5-20 dB SNR.
- ``reverb``: a synthetic room, RT60 0.3-0.9 s.

Apart from the stress set, :data:`OCTAVE_UP` raises a voice an octave the ways a user's tool does
(Praat's PSOLA with the formants kept; a phase vocoder, as ``librosa``/``torchaudio``
``pitch_shift``; playing it twice as fast): what the model's shift gate learns to flag
(``scripts/train_shift_gate.py``).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from scipy import signal

from src.data.audio import SAMPLE_RATE_HZ
from src.data.augment import babble, coloured_noise, mix_at_snr, room_impulse_response, telephone

PITCH_FLOOR_HZ, PITCH_CEILING_HZ = 75.0, 600.0  # Praat's analysis range (children reach 400+ Hz)
MALE_SEMITONES = (2.0, 6.0)  # how far a man's F0 is raised (an angry, excited or fearful man)
FEMALE_SEMITONES = (-4.0, -2.0)  # how far a woman's F0 is lowered
SNR_DB = (5.0, 20.0)
RT60_S = (0.3, 0.9)
CROP_S = (1.0, 2.0)
TEMPO = {"fast": 1.3, "slow": 1 / 1.3}


def _sound(wave: np.ndarray):
    import parselmouth

    return parselmouth.Sound(np.asarray(wave, np.float64), sampling_frequency=SAMPLE_RATE_HZ)


def shift_pitch(wave: np.ndarray, semitones: float) -> np.ndarray:
    """F0 moved by ``semitones`` with formants kept (PSOLA: Praat's overlap-add resynthesis)."""
    from parselmouth.praat import call

    snd = _sound(wave)
    manipulation = call(snd, "To Manipulation", 0.01, PITCH_FLOOR_HZ, PITCH_CEILING_HZ)
    tier = call(manipulation, "Extract pitch tier")
    call(tier, "Multiply frequencies", snd.xmin, snd.xmax, 2.0 ** (semitones / 12.0))
    call([tier, manipulation], "Replace pitch tier")
    out = call(manipulation, "Get resynthesis (overlap-add)")
    return _same_length(out.values[0], len(wave))


def change_tempo(wave: np.ndarray, factor: float) -> np.ndarray:
    """Speech ``factor`` times faster (> 1) or slower (< 1), pitch kept (Praat's Lengthen (overlap-add))."""
    from parselmouth.praat import call

    out = call(_sound(wave), "Lengthen (overlap-add)", PITCH_FLOOR_HZ, PITCH_CEILING_HZ, 1.0 / factor)
    return np.asarray(out.values[0], np.float32)


def loudest_crop(wave: np.ndarray, seconds: float) -> np.ndarray:
    """The ``seconds`` of the clip with the most energy (a crop of speech, not of a pause)."""
    n = int(seconds * SAMPLE_RATE_HZ)
    if len(wave) <= n:
        return wave.astype(np.float32).copy()
    cum = np.concatenate([[0.0], np.cumsum(np.square(wave, dtype=np.float64))])
    start = int(np.argmax(cum[n:] - cum[:-n]))  # the energy of every n-sample window
    return wave[start:start + n].astype(np.float32).copy()


def codec_roundtrip(wave: np.ndarray, codec: str, bit_rate: int, rate_hz: int, container: str) -> np.ndarray:
    """Encode with FFmpeg's ``codec`` (PyAV) at ``bit_rate`` and ``rate_hz``, decode, back to 16 kHz."""
    import av
    import soxr

    buf = io.BytesIO()
    pcm = np.clip(np.asarray(wave, np.float32), -1.0, 1.0)
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate_hz, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray((pcm * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r") as inp:
        rate = inp.streams.audio[0].rate
        chunks = [f.to_ndarray().reshape(-1, f.samples).mean(0) if f.format.is_planar
                  else f.to_ndarray().reshape(f.samples, -1).mean(1) for f in inp.decode(audio=0)]
    decoded = np.concatenate(chunks).astype(np.float32)
    if np.issubdtype(chunks[0].dtype, np.integer):
        decoded /= 32768.0
    return _same_length(soxr.resample(decoded, rate, SAMPLE_RATE_HZ).astype(np.float32), len(wave))


def _same_length(x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


def _babble(wave: np.ndarray, rng: np.random.Generator, others: list[np.ndarray]) -> np.ndarray:
    return mix_at_snr(wave, babble(len(wave), rng, others)[0], rng.uniform(*SNR_DB))


def _pitch(wave: np.ndarray, rng: np.random.Generator, gender: str) -> np.ndarray:
    lo, hi = MALE_SEMITONES if gender == "male" else FEMALE_SEMITONES
    return shift_pitch(wave, float(rng.uniform(lo, hi)))


# condition -> (wave, rng, gender, other speakers' waves) -> degraded wave
CONDITIONS: dict[str, Callable[[np.ndarray, np.random.Generator, str, list[np.ndarray]], np.ndarray]] = {
    "pitch": lambda w, rng, g, o: _pitch(w, rng, g),
    "fast": lambda w, rng, g, o: change_tempo(w, TEMPO["fast"]),
    "slow": lambda w, rng, g, o: change_tempo(w, TEMPO["slow"]),
    "crop": lambda w, rng, g, o: loudest_crop(w, float(rng.uniform(*CROP_S))),
    "telephone": lambda w, rng, g, o: telephone(w),
    "opus": lambda w, rng, g, o: codec_roundtrip(w, "libopus", 8_000, 16_000, "ogg"),
    "amr": lambda w, rng, g, o: codec_roundtrip(w, "libopencore_amrnb", 12_200, 8_000, "amr"),
    "noise": lambda w, rng, g, o: mix_at_snr(w, coloured_noise(len(w), rng), rng.uniform(*SNR_DB)),
    "babble": lambda w, rng, g, o: _babble(w, rng, o),
    "reverb": lambda w, rng, g, o: signal.fftconvolve(w, room_impulse_response(rng.uniform(*RT60_S), rng))[: len(w)],
}


def _speed(wave: np.ndarray, factor: float) -> np.ndarray:
    import soxr

    return soxr.resample(np.asarray(wave, np.float32), factor * SAMPLE_RATE_HZ, SAMPLE_RATE_HZ).astype(np.float32)


def _vocoder(wave: np.ndarray, semitones: float) -> np.ndarray:
    import torch
    import torchaudio

    x = torch.from_numpy(np.asarray(wave, np.float32))[None]
    return torchaudio.functional.pitch_shift(x, SAMPLE_RATE_HZ, round(semitones)).numpy()[0].astype(np.float32)


# method -> wave -> the same voice an octave up (formants kept by PSOLA only; speed halves the duration)
OCTAVE_UP: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "psola": lambda w: shift_pitch(w, 12.0),
    "vocoder": lambda w: _vocoder(w, 12.0),
    "speed": lambda w: _speed(w, 2.0),
}


def stress(wave: np.ndarray, condition: str, rng: np.random.Generator, gender: str,
           others: list[np.ndarray] | None = None) -> np.ndarray:
    """``wave`` (16 kHz mono) under ``condition`` (:data:`CONDITIONS`); ``gender`` picks the
    pitch shift's direction, ``others`` are other speakers' waves for babble. The result never
    clips (scaled under full scale when it would)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown stress condition {condition!r}: one of {', '.join(CONDITIONS)}")
    if condition == "babble" and not others:
        raise ValueError("babble needs other speakers' waves")
    x = np.asarray(CONDITIONS[condition](np.asarray(wave, np.float32), rng, gender, others or []), np.float64)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x.astype(np.float32)
