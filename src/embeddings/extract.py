"""Clips -> audio -> Silero speech -> encoder -> JSONL records, resumable.

Decoding and VAD of the next chunk of clips run in a background thread while the
encoder embeds the current one. Every clip ends as exactly one record: ``ok`` with an
embedding, ``no_speech``, or ``error`` with a ``reason`` (``missing``, ``unreadable``,
``too_short``, ...); a bad file never stops the run.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from src.data.audio import SAMPLE_RATE_HZ, AudioError, load_audio
from src.data.manifest import Clip
from src.embeddings.store import STATUS_ERROR, STATUS_NO_SPEECH, STATUS_OK, JsonlWriter
from src.encoders.base import Encoder
from src.vad.silero import SileroSegmenter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractOptions:
    """How clips are screened and grouped (units in the names)."""

    chunk_clips: int = 128
    encoder_batch_size: int = 16
    min_clip_s: float = 0.5
    min_speech_s: float = 0.25
    max_duration_s: float = 7200.0
    progress: bool = True


@dataclass
class Summary:
    """What a run did, for the closing log line and for tests."""

    done: int = 0
    skipped: int = 0
    statuses: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    audio_s: float = 0.0
    speech_s: float = 0.0
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        """Plain numbers, for ``<encoder>-embeddings.extract.json``."""
        return {"done": self.done, "skipped": self.skipped, "statuses": dict(self.statuses),
                "reasons": dict(self.reasons), "audio_s": round(self.audio_s, 3),
                "speech_s": round(self.speech_s, 3), "wall_s": round(self.wall_s, 3)}

    def text(self) -> str:
        rate = self.audio_s / self.wall_s if self.wall_s else 0.0
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items())) or "none"
        return (f"done {self.done} (ok {self.statuses[STATUS_OK]}, no_speech {self.statuses[STATUS_NO_SPEECH]}, "
                f"errors {self.statuses[STATUS_ERROR]}), skipped {self.skipped} already written; "
                f"errors by reason: {reasons}; {self.audio_s:.0f} s of audio in {self.wall_s:.1f} s "
                f"({rate:.0f}x real time)")


@dataclass
class _Prepared:
    """One clip after decoding and VAD."""

    clip: Clip
    duration_s: float = 0.0
    speech: np.ndarray | None = None
    status: str = STATUS_OK
    reason: str | None = None


def base_record(clip: Clip, encoder: Encoder) -> dict:
    """The fields every record carries, whatever its status."""
    rec = {"id": clip.id, "path": str(clip.path), "speaker": clip.speaker, "gender": clip.gender,
           "encoder": encoder.name, "dim": encoder.dim}
    if clip.age is not None:
        rec["age"] = clip.age
    if clip.split is not None:
        rec["split"] = clip.split
    if clip.groups:
        rec["groups"] = clip.groups
    return rec


def _decode(clip: Clip, opts: ExtractOptions) -> tuple[_Prepared, np.ndarray | None]:
    """Load one clip, or mark why it cannot be used."""
    try:
        wave = load_audio(clip.path, SAMPLE_RATE_HZ, opts.max_duration_s)
    except AudioError as e:
        return _Prepared(clip, status=STATUS_ERROR, reason=e.reason), None
    prep = _Prepared(clip, duration_s=len(wave) / SAMPLE_RATE_HZ)
    if prep.duration_s < opts.min_clip_s:
        prep.status, prep.reason = STATUS_ERROR, "too_short"
        return prep, None
    return prep, wave


def prepare_chunk(clips: list[Clip], segmenter: SileroSegmenter, opts: ExtractOptions,
                  stop: threading.Event | None = None) -> list[_Prepared] | None:
    """Decode a chunk of clips and keep each one's speech (batched VAD); ``None`` when ``stop``
    was set before the VAD."""
    decoded = []
    for c in clips:
        if stop is not None and stop.is_set():
            return None
        decoded.append(_decode(c, opts))
    live = [(p, w) for p, w in decoded if w is not None]
    speech = segmenter.speech_only([w for _, w in live]) if live else []
    for (prep, _), s in zip(live, speech):
        if len(s) < opts.min_speech_s * SAMPLE_RATE_HZ:
            prep.status, prep.reason = STATUS_NO_SPEECH, "no speech found by the VAD"
        else:
            prep.speech = s
    return [p for p, _ in decoded]


def _prefetch(chunks: list[list[Clip]], segmenter: SileroSegmenter, opts: ExtractOptions,
              depth: int = 2) -> Iterator[list[_Prepared]]:
    """Yield prepared chunks, preparing the next ones in a background thread.

    However the consumer stops (the end, an error, ``SystemExit`` raised by a launcher's
    timeout-signal handler, ``close()``), the thread is told to stop and joined before this
    generator returns: a thread still inside torch while the interpreter exits aborts the
    process (``terminate called without an active exception``) instead of letting it exit
    with the launcher's requeue code.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                prepared = prepare_chunk(chunk, segmenter, opts, stop)
                if prepared is None or not put(prepared):
                    return
        except BaseException as e:  # handed to the consumer, re-raised there
            put(e)
            return
        put(None)

    t = threading.Thread(target=work, name="decode-vad", daemon=True)
    t.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        _join(t)


def _join(t: threading.Thread) -> None:
    """Join ``t`` even if a signal handler raises meanwhile (then re-raise that, once joined)."""
    err: BaseException | None = None
    while t.is_alive():
        try:
            t.join()
        except BaseException as e:  # SystemExit from a launcher's signal handler
            err = err or e
    if err is not None:
        raise err


LAUNCHER_MODULES = ("submitit", "hydra_plugins")  # their exceptions stop the job; never retried per clip


def _reraise_launcher_error(e: Exception) -> None:
    """A launcher's own exception (submitit's ``UncompletedJobError``, raised by its signal
    handler wherever the main thread happens to be, often inside ``encoder.embed``) is not an
    encoder failure: let it end the job."""
    if type(e).__module__.split(".")[0] in LAUNCHER_MODULES:
        raise e


def embed_prepared(prepared: list[_Prepared], encoder: Encoder, batch_size: int) -> list[dict]:
    """Records for one prepared chunk, embedding the speech in encoder batches."""
    ok = [p for p in prepared if p.speech is not None]
    vectors: dict[str, np.ndarray] = {}
    for i in range(0, len(ok), batch_size):
        batch = ok[i:i + batch_size]
        try:
            emb = encoder.embed([p.speech for p in batch])
        except Exception as e:  # one bad batch must not stop the run: retry clip by clip
            _reraise_launcher_error(e)
            log.warning("batch failed (%s); retrying its clips one at a time", e)
            emb = None
        for j, p in enumerate(batch):
            try:
                v = emb[j] if emb is not None else encoder.embed([p.speech])[0]
                if not np.isfinite(v).all():
                    raise ValueError("non-finite embedding")
                vectors[p.clip.id] = v
            except Exception as e:
                _reraise_launcher_error(e)
                p.status, p.reason = STATUS_ERROR, f"encoder_failed: {e}"
    records = []
    for p in prepared:
        rec = base_record(p.clip, encoder)
        rec.update(duration_s=round(p.duration_s, 3),
                   speech_s=round(len(p.speech) / SAMPLE_RATE_HZ, 3) if p.speech is not None else 0.0,
                   status=p.status)
        if p.clip.id in vectors:
            rec["embedding"] = [round(float(x), 6) for x in vectors[p.clip.id]]
        else:
            rec["embedding"] = None
            rec["reason"] = p.reason
        records.append(rec)
    return records


def chunk_plan(clips: list[Clip], chunk_clips: int, first: int) -> list[list[Clip]]:
    """Chunks of ``chunk_clips``, but a small first one (``first`` clips) so the encoder
    starts while the background thread prepares the rest."""
    head, rest = clips[:min(first, chunk_clips)], clips[min(first, chunk_clips):]
    return ([head] if head else []) + [rest[i:i + chunk_clips] for i in range(0, len(rest), chunk_clips)]


def extract(clips: list[Clip], segmenter: SileroSegmenter, encoder: Encoder, writer: JsonlWriter,
            opts: ExtractOptions = ExtractOptions()) -> Summary:
    """Embed every clip not yet in ``writer``'s file; returns what was done."""
    from tqdm import tqdm

    summary = Summary()
    todo = [c for c in clips if c.id not in writer.done_ids]
    summary.skipped = len(clips) - len(todo)
    if summary.skipped:
        log.info("resuming: %d of %d clips already written", summary.skipped, len(clips))
    chunks = chunk_plan(todo, opts.chunk_clips, first=opts.encoder_batch_size)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="clip", disable=not opts.progress, desc=f"extract {encoder.name}")
    with contextlib.closing(_prefetch(chunks, segmenter, opts)) as prepared_chunks:
        _write_all(prepared_chunks, encoder, writer, opts, summary, bar, start)
    bar.close()
    summary.wall_s = time.perf_counter() - start
    return summary


def _write_all(prepared_chunks, encoder: Encoder, writer: JsonlWriter, opts: ExtractOptions, summary: Summary,
               bar, start: float) -> None:
    for prepared in prepared_chunks:
        for rec in embed_prepared(prepared, encoder, opts.encoder_batch_size):
            writer.write(rec)
            summary.done += 1
            summary.statuses[rec["status"]] += 1
            if rec.get("reason") and rec["status"] == STATUS_ERROR:
                summary.reasons[rec["reason"].split(":")[0]] += 1
            summary.audio_s += rec["duration_s"]
            summary.speech_s += rec["speech_s"]
        summary.wall_s = time.perf_counter() - start
        bar.update(len(prepared))
        bar.set_postfix(audio_s_per_s=f"{summary.audio_s / max(summary.wall_s, 1e-9):.0f}")
