"""Section (b) of ``bench/extract.py``: ``extract()`` end to end (decode, VAD, encode, JSON lines
written to a temp file) against the bare ``encoder.embed`` on exactly the speech the pipeline embeds,
in the same batches; also each stage's serial cost and a check that both embedded the same speech.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from bench.extract_common import Clock, check_threads, chunked

log = logging.getLogger("bench.extract")

GOAL_PIPELINE_RATIO = 0.85      # e2e / bare-encoder throughput, at least


class _ReplayEncoder:
    """Hands back precomputed embeddings in call order: isolates the pipeline's non-encoder work."""

    def __init__(self, real, vectors: np.ndarray):
        self.name, self.dim, self.identity = real.name, real.dim, real.identity
        self.sample_rate_hz = real.sample_rate_hz
        self._vectors, self._next = vectors, 0

    def embed(self, waves):
        v = self._vectors[self._next:self._next + len(waves)]
        self._next += len(waves)
        return v


def run_e2e(clips, segmenter, encoder, opts, meta: dict, path: Path, threads: int):
    """One timed ``extract()`` into a fresh JSONL file; returns (wall seconds, summary, path)."""
    from src.embeddings.extract import extract
    from src.embeddings.store import JsonlWriter

    check_threads(threads, "end to end")
    with JsonlWriter(path, meta) as writer, Clock() as c:
        summary = extract(clips, segmenter, encoder, writer, opts)
    log.info("end to end   %.2f s (cpu %.2f s; %s)", c.wall_s, c.cpu_s, summary.text())
    return c.wall_s, c.cpu_s, summary, path


def prepare_speech(clips, waves, segmenter, opts) -> tuple[list[list], list[list], float]:
    """The speech the pipeline embeds: per chunk, batched VAD, then the min_speech_s screen.

    Returns (the ``_Prepared`` clips per chunk, the encoder's batches of speech, VAD wall seconds).
    """
    from src.data.audio import SAMPLE_RATE_HZ
    from src.embeddings.extract import _Prepared

    t0 = time.perf_counter()
    prepared_chunks: list[list] = []
    for chunk_clips, chunk_waves in zip(chunked(clips, opts.chunk_clips), chunked(waves, opts.chunk_clips)):
        speech = segmenter.speech_only(chunk_waves)
        chunk = []
        for c, w, s in zip(chunk_clips, chunk_waves, speech):
            p = _Prepared(c, duration_s=len(w) / SAMPLE_RATE_HZ)
            if len(s) < opts.min_speech_s * SAMPLE_RATE_HZ:
                p.status, p.reason = "no_speech", "no speech found by the VAD"
            else:
                p.speech = s
            chunk.append(p)
        prepared_chunks.append(chunk)
    vad_s = time.perf_counter() - t0
    batches = [[p.speech for p in ok[i:i + opts.encoder_batch_size]]
               for ok in ([p for p in ch if p.speech is not None] for ch in prepared_chunks)
               for i in range(0, len(ok), opts.encoder_batch_size)]
    return prepared_chunks, batches, vad_s


def compare_vectors(path: Path, prepared_chunks, vectors: np.ndarray) -> tuple[bool, float]:
    """Same speech embedded? The JSONL vectors (rounded to 1e-6) against the bare ones: (every clip
    with speech has a vector, their max |diff|)."""
    from src.embeddings.store import iter_lines

    recs = {r["id"]: r for r in iter_lines(path)}
    ok_ids = [p.clip.id for ch in prepared_chunks for p in ch if p.speech is not None]
    got = [recs[i]["embedding"] for i in ok_ids if recs.get(i, {}).get("embedding") is not None]
    same_speech = len(got) == len(ok_ids)
    max_diff = float(np.abs(np.array(got) - vectors).max()) if same_speech else float("nan")
    return same_speech, max_diff


def records_seconds(prepared_chunks, encoder, vectors: np.ndarray, opts, meta: dict, path: Path) -> float:
    """The pipeline's own work besides decode, VAD and encoder: record building (embed_prepared
    with the vectors replayed) and JSON writing to ``path``, run serially."""
    from src.embeddings.extract import embed_prepared
    from src.embeddings.store import JsonlWriter

    replay = _ReplayEncoder(encoder, vectors)
    t0 = time.perf_counter()
    with JsonlWriter(path, meta) as writer:
        for ch in prepared_chunks:
            for rec in embed_prepared(ch, replay, opts.encoder_batch_size):
                writer.write(rec)
    return time.perf_counter() - t0


def bench_pipeline(clips, waves, segmenter, encoder, opts, meta: dict, tmp_dir: Path, threads: int,
                   repeats: int, audio_s: float, decode_s: float, first_e2e, rerun_e2e) -> dict:
    """Bare ``encoder.embed`` on the speech ``extract()`` embeds, in the same batches, vs ``extract()``.

    ``first_e2e`` is the (wall s, cpu s, summary, path) of the end-to-end run made first, before the
    benchmark decoded anything (so the peak RSS after it is the pipeline's own); the other
    ``repeats - 1`` end-to-end runs (``rerun_e2e(i)``) alternate with the bare-encoder runs here.
    """
    from src.data.audio import SAMPLE_RATE_HZ

    prepared_chunks, batches, vad_s = prepare_speech(clips, waves, segmenter, opts)
    n_speech = sum(len(b) for b in batches)
    speech_s = sum(len(s) for b in batches for s in b) / SAMPLE_RATE_HZ
    if not batches:
        raise RuntimeError("the VAD found no speech in any clip; nothing to benchmark")

    encoder.embed(batches[0][:1])  # warm-up

    times = {"bare": [], "e2e": [first_e2e[0]]}
    cpu = {"bare": [], "e2e": [first_e2e[1]]}
    summary, path = first_e2e[2], first_e2e[3]
    for r in range(repeats):
        check_threads(threads, "bare encoder")
        with Clock() as c:
            vectors = np.concatenate([encoder.embed(b) for b in batches])
        times["bare"].append(c.wall_s)
        cpu["bare"].append(c.cpu_s)
        log.info("bare encoder %.2f s (cpu %.2f s)", c.wall_s, c.cpu_s)
        if r > 0:
            wall_s, cpu_s, summary, path = rerun_e2e(r)
            times["e2e"].append(wall_s)
            cpu["e2e"].append(cpu_s)
    bare_s, e2e_s = min(times["bare"]), min(times["e2e"])

    same_speech, max_diff = compare_vectors(path, prepared_chunks, vectors)
    records_s = records_seconds(prepared_chunks, encoder, vectors, opts, meta, tmp_dir / "replay" / path.name)

    return {
        "clips": len(clips), "clips_embedded": n_speech, "audio_s": audio_s, "speech_s": speech_s,
        "summary_audio_s": summary.audio_s, "statuses": dict(summary.statuses),
        "chunk_clips": opts.chunk_clips, "encoder_batch_size": opts.encoder_batch_size,
        "encoder": encoder.name, "encoder_identity": encoder.identity,
        "bare_s": bare_s, "e2e_s": e2e_s,
        "bare_audio_s_per_s": audio_s / bare_s, "e2e_audio_s_per_s": audio_s / e2e_s,
        "bare_clips_per_s": len(clips) / bare_s, "e2e_clips_per_s": len(clips) / e2e_s,
        "ratio": bare_s / e2e_s,
        "embeddings_match": same_speech and max_diff <= 1e-5, "embeddings_max_abs_diff": max_diff,
        # serial cost of each stage (not overlapped), to see where e2e time goes
        "stage_s": {"decode": decode_s, "vad_speech_only": vad_s, "encode": bare_s, "records_json": records_s},
        "all_times_s": times, "all_cpu_s": cpu,
    }


def pipeline_goals(pipe: dict) -> dict:
    """name: (measured, goal, pass) for the report's table and the JSON's ``goals``."""
    return {"pipeline_ratio": (pipe["ratio"], GOAL_PIPELINE_RATIO, pipe["ratio"] >= GOAL_PIPELINE_RATIO)}


def print_pipeline(pipe: dict, vad: dict, goals: dict) -> list[tuple]:
    """Prints the details of (b), with the CPU seconds of (a) and (b); returns its rows of the table."""
    st = pipe["stage_s"]
    print(f"\n(b) pipeline: {pipe['encoder']}, {pipe['encoder_batch_size']} clips per embed(), chunks of "
          f"{pipe['chunk_clips']}; {pipe['clips_embedded']} clips embedded, {pipe['speech_s'] / 60:.1f} min of speech")
    print(f"  bare encoder.embed    {pipe['bare_s']:8.2f} s {pipe['bare_audio_s_per_s']:8.1f} audio-s/s "
          f"{pipe['bare_clips_per_s']:6.2f} clips/s")
    print(f"  extract() end to end  {pipe['e2e_s']:8.2f} s {pipe['e2e_audio_s_per_s']:8.1f} audio-s/s "
          f"{pipe['e2e_clips_per_s']:6.2f} clips/s  ratio {pipe['ratio']:.3f}")
    print(f"  JSONL vectors equal the bare encoder's: {pipe['embeddings_match']} "
          f"(max |diff| {pipe['embeddings_max_abs_diff']:.1e})")
    print(f"  each stage alone: decode {st['decode']:.2f} s, VAD+join {st['vad_speech_only']:.2f} s, "
          f"encode {st['encode']:.2f} s, records+JSON {st['records_json']:.2f} s (sum {sum(st.values()):.2f} s; "
          f"extract() overlaps decode+VAD of the next chunk with encoding)")
    cpu = {k: min(v) for k, v in {**{"vad_" + k: v for k, v in vad["all_cpu_s"].items()},
                                    **pipe["all_cpu_s"]}.items()}
    print("  CPU seconds (all threads, fastest run): " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    return [
        ("Pipeline e2e / bare encoder throughput", f"{pipe['ratio']:.3f}", f">= {GOAL_PIPELINE_RATIO:g}",
         goals["pipeline_ratio"][2]),
        ("e2e throughput", f"{pipe['e2e_audio_s_per_s']:.1f} audio-s/s, {pipe['e2e_clips_per_s']:.2f} clips/s",
         "", None),
        ("bare encoder throughput",
         f"{pipe['bare_audio_s_per_s']:.1f} audio-s/s, {pipe['bare_clips_per_s']:.2f} clips/s", "", None),
    ]
