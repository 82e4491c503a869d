"""Section (c) of ``bench/extract.py``: peak RSS of the process (taken by ``bench/extract_core.py``
around the runs) and the tracemalloc peak while ``load_audio`` decodes a synthesized long file (48 kHz
stereo 16-bit WAV tiled from the real clips, deleted afterwards) against its 16 kHz mono float32 size.
"""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bench.extract_common import vm_kb

log = logging.getLogger("bench.extract")

GOAL_DECODE_MEMORY_RATIO = 2.0  # tracemalloc peak / 16 kHz mono float32 size, at most


def write_long_wav(path: Path, waves: list[np.ndarray], minutes: float, rate_hz: int = 48_000,
                   base_max_s: float = 120.0) -> tuple[int, float]:
    """A ``minutes`` long stereo 16-bit WAV at ``rate_hz``, tiled from real 16 kHz clips.

    Up to ``base_max_s`` of the clips are joined, resampled to ``rate_hz`` (soxr), given a
    right channel that is the left one rotated by half its length, and written over and over
    in blocks, so writing needs no more memory than that base. Returns (frames, write seconds).
    """
    import soundfile as sf
    import soxr

    from src.data.audio import SAMPLE_RATE_HZ

    t0 = time.perf_counter()
    base, n = [], 0
    for w in waves:
        base.append(w)
        n += len(w)
        if n >= base_max_s * SAMPLE_RATE_HZ:
            break
    left = soxr.resample(np.concatenate(base), SAMPLE_RATE_HZ, rate_hz, quality="HQ")
    stereo = np.stack([left, np.roll(left, len(left) // 2)], axis=1)
    block = (np.clip(stereo, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    del base, left, stereo
    frames = int(round(minutes * 60 * rate_hz))
    with sf.SoundFile(str(path), "w", samplerate=rate_hz, channels=2, subtype="PCM_16", format="WAV") as f:
        written = 0
        while written < frames:
            part = block[: frames - written]
            f.write(part)
            written += len(part)
    return frames, time.perf_counter() - t0


def bench_long_decode(waves: list[np.ndarray], minutes: float, tmp_dir: Path, max_duration_s: float) -> dict:
    """tracemalloc peak of ``load_audio`` on a long 48 kHz stereo WAV vs its 16 kHz mono float32 size."""
    from src.data.audio import SAMPLE_RATE_HZ, load_audio

    path = tmp_dir / "long-48k-stereo.wav"
    try:
        frames, write_s = write_long_wav(path, waves, minutes)
        size_mb = path.stat().st_size / 2**20
        log.info("wrote %s: %.1f min, %.0f MB in %.1f s", path, minutes, size_mb, write_s)
        # Peak RSS during the decode alone (Linux): reset VmHWM, then read it back.
        try:
            Path("/proc/self/clear_refs").write_text("5")
            hwm_reset = True
        except OSError:
            hwm_reset = False
        rss_before_kb = vm_kb("VmRSS")
        tracemalloc.start()
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        wave = load_audio(path, SAMPLE_RATE_HZ, max(max_duration_s, minutes * 60 + 1))
        decode_s = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        hwm_kb = vm_kb("VmHWM") if hwm_reset else None
        out_bytes = wave.nbytes
        del wave
    finally:
        path.unlink(missing_ok=True)
    rss_growth_mb = (hwm_kb - rss_before_kb) / 2**10 if hwm_kb and rss_before_kb else None
    return {
        "minutes": minutes, "frames_48k": frames, "wav_mb": size_mb, "write_s": write_s,
        "decode_s_with_tracemalloc": decode_s, "decode_x_real_time": minutes * 60 / decode_s,
        "mono16k_float32_mb": out_bytes / 2**20, "tracemalloc_peak_mb": peak / 2**20,
        "ratio": peak / out_bytes, "excess_over_result_mb": (peak - out_bytes) / 2**20,
        # lower bound: freed heap pages the decoder reuses do not raise the high-water mark
        "rss_growth_during_decode_mb": rss_growth_mb,
    }


def memory_goals(long: dict | None) -> dict:
    """name: (measured, goal, pass) for the report's table and the JSON's ``goals`` (none without the long file)."""
    if long is None:
        return {}
    return {"decode_memory_ratio": (long["ratio"], GOAL_DECODE_MEMORY_RATIO, long["ratio"] <= GOAL_DECODE_MEMORY_RATIO)}


def print_memory(mem: dict, goals: dict) -> list[tuple]:
    """Prints the details of (c); returns its rows of the table."""
    long = mem["long_file"]
    print(f"\n(c) memory: peak RSS {mem['peak_rss_after_models_mb']:.0f} MB after loading models, "
          f"{mem['peak_rss_after_extract_mb']:.0f} MB after extraction, {mem['peak_rss_end_mb']:.0f} MB at the end")
    if long:
        growth = long["rss_growth_during_decode_mb"]
        print(f"  {long['minutes']:g} min 48 kHz stereo WAV ({long['wav_mb']:.0f} MB): load_audio tracemalloc peak "
              f"{long['tracemalloc_peak_mb']:.0f} MB = 16 kHz mono float32 result {long['mono16k_float32_mb']:.0f} MB "
              f"+ {long['excess_over_result_mb']:.0f} MB; ratio {long['ratio']:.2f}; "
              + (f"RSS high-water growth >= {growth:.0f} MB; " if growth is not None else "")
              + f"{long['decode_x_real_time']:.0f}x real time")
        if long["minutes"] < 60:
            print(f"  note: the goal is meant for the 60 min default; on a short file the decoder's fixed "
                  f"block buffers (~{long['excess_over_result_mb']:.0f} MB here) dominate the ratio")
    rows = [("Peak RSS after extraction", f"{mem['peak_rss_after_extract_mb']:.0f} MB", "", None)]
    if long:
        rows.append((f"Long-file decode peak / 16 kHz mono size ({long['minutes']:g} min)", f"{long['ratio']:.2f}",
                     f"<= {GOAL_DECODE_MEMORY_RATIO:g}", goals["decode_memory_ratio"][2]))
    return rows
