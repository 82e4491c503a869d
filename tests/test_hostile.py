"""Hostile input (issue 14) on real clips made bad: the answer is honest about audio it
cannot trust, partial files keep what decodes, and odd paths get their own reasons.

The classifier is the session's run trained on the bundled sample (``test_inference.py``);
the clip is the surest male speaker's. Each degraded version's expected answer was
computed and is argued next to it (``bench/quality.py`` gives the same picture on the dev
set: accuracy and confident wrong answers per degradation).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from src.data.audio import SAMPLE_RATE_HZ, load_audio
from src.data.degrade import first_seconds, hard_clip, telephone, with_noise
from src.inference.quality import assess
from src.labels import UNKNOWN
from src.vad.silero import join_segments

from test_inference import pipe, run_dir, sure_speakers  # noqa: F401  (the session's run)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = SAMPLE_RATE_HZ


@pytest.fixture(scope="module")
def male(pipe, sure_speakers):  # noqa: F811
    """The longest clip of the sure male speakers (path, 16 kHz samples, its speech); clean,
    it is male, sure, and long enough that nothing is noted."""
    paths = [p for s in sure_speakers if s.gender == "male" for p in s.paths]
    path = max(paths, key=lambda p: sf.info(str(p)).duration)
    wave = load_audio(path)
    r = pipe(wave)
    assert (r.label, r.quality) == ("male", []) and r.p_male > 0.9, r
    return path, wave, join_segments(wave, pipe.segmenter.timestamps([wave])[0])


def test_hard_clipping_is_unknown_and_says_clipped(pipe, male):
    """x8 overdrive: the probe's male clip came out female 0.9985; now unknown, reason clipped."""
    _, wave, _ = male
    r = pipe(hard_clip(wave, 8.0))
    assert r.status == UNKNOWN and r.label == UNKNOWN and "clipped" in r.quality, r
    assert r.p_male == pytest.approx(0.5)


def test_a_second_of_speech_is_unknown_and_says_short(pipe, male):
    _, wave, _ = male
    r = pipe(first_seconds(wave, 1.0))
    assert r.status == UNKNOWN and r.label == UNKNOWN and r.quality == ["short_speech"], r
    assert r.speech_s < 1.0


def test_speech_drowned_in_noise_is_unknown_and_says_noisy(pipe, male):
    _, wave, speech = male
    r = pipe(with_noise(wave, 0.0, speech=speech))
    assert r.status == UNKNOWN and r.label == UNKNOWN and "noisy" in r.quality, r


def at_level(wave: np.ndarray, db: float) -> np.ndarray:
    return (wave * (10 ** (db / 20) / np.percentile(np.abs(wave), 99.9))).astype(np.float32)


def test_a_quiet_voice_is_capped_and_a_very_quiet_one_unknown(pipe, male):
    """The shared corpora's voices reach down to -35 dBFS; under -45 the model errs more (50 dev
    speakers at -50 dBFS: 86 % right, 4 % confidently wrong; a sample woman came back male 0.67), so
    -45..-55 is capped at 0.8 and quieter is unknown. At -40 nothing is noted."""
    _, wave, _ = male
    assert "quiet" not in pipe(at_level(wave, -40.0)).quality
    r = pipe(at_level(wave, -50.0))
    assert "quiet" in r.quality and max(r.p_male, r.p_female) <= 0.8, r
    r = pipe(at_level(wave, -57.0))
    assert r.label == UNKNOWN and r.status == UNKNOWN and "quiet" in r.quality, r
    r = pipe(at_level(wave, -66.0))  # the VAD's second look finds the speech; too quiet to answer
    assert r.status == UNKNOWN and "quiet" in r.quality and r.speech_s > 1.0, r
    assert assess(at_level(wave, -50.0), SR).voice_level_db == pytest.approx(-50.0, abs=1.0)


def test_light_noise_keeps_a_sure_answer(pipe, male):
    """20 dB SNR is ordinary room noise: the answer stays male, nothing noted."""
    _, wave, speech = male
    r = pipe(with_noise(wave, 20.0, speech=speech))
    assert (r.label, r.quality) == ("male", []) and r.p_male > 0.9, r


def test_a_telephone_band_is_noted_and_capped(pipe, male):
    """8 kHz telephone speech: 97.5 % right on held-out speakers (bench/quality.py) but the probe's
    telephone man came out female 0.86, so the answer is capped at narrowband_cap (0.75)."""
    _, wave, _ = male
    r = pipe(telephone(wave))
    assert r.label == "male" and r.quality == ["narrowband"] and r.p_male <= 0.75, r


def mp3_round_trip(wave: np.ndarray, rate: int) -> np.ndarray:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1, 1), rate, format="MP3", compression_level=0.9, bitrate_mode="CONSTANT")
    buf.seek(0)
    return sf.read(buf, dtype="float32")[0]


def test_clipping_at_48_khz_is_seen_before_resampling_also_through_mp3(pipe, male, tmp_path):
    """The probe: 0/10 clipped 48 kHz clips flagged (the check ran after resampling), 0/10 after MP3."""
    _, wave, _ = male
    w48 = soxr.resample(wave, SR, 48_000).astype(np.float32)
    clipped = hard_clip(w48, 8.0)
    for name, audio in (("48k", clipped), ("48k-mp3", mp3_round_trip(clipped, 48_000))):
        r = pipe(audio, 48_000)
        assert r.label == UNKNOWN and "clipped" in r.quality, (name, r)
        path = tmp_path / f"{name}.wav"
        sf.write(path, audio, 48_000, subtype="FLOAT")
        r = pipe(path, timeline=True)  # through the decoder's native-rate meter; segments capped too
        assert r.label == UNKNOWN and "clipped" in r.quality, (name, r)
        assert r.timeline and all(s.label == UNKNOWN for s in r.timeline), r.timeline
    clean = pipe(mp3_round_trip(w48 * 0.5 / np.abs(w48).max(), 48_000), 48_000)
    assert clean.label == "male" and "clipped" not in clean.quality, clean


def test_mixed_never_overrides_an_unknown_the_audio_forced(pipe, male):
    """The probe: noise at 0 dB SNR came out ``mixed``, status ok."""
    _, wave, speech = male
    r = pipe(with_noise(wave, 0.0, speech=speech), timeline=True)
    assert r.label == UNKNOWN and r.status == UNKNOWN and "noisy" in r.quality, r
    assert all(s.label == UNKNOWN for s in r.timeline), r.timeline


def test_quality_measures_on_the_real_clip(male):
    """The measures behind the notes, on the clean clip and its degraded versions."""
    _, wave, speech = male
    clean = assess(wave, SR)
    assert clean.notes == () and clean.max_confidence == 1.0
    assert clean.clip_score < 0.55 and clean.snr_db > 25 and clean.high_band_db > -30
    assert assess(hard_clip(wave, 8.0), SR).clip_score > 0.7
    assert assess(telephone(wave), SR).high_band_db < -40
    assert assess(soxr.resample(telephone(wave), SR, 8000), 8000).high_band_db == float("-inf")
    assert assess(with_noise(wave, 0.0, speech=speech), SR).snr_db < 12


def test_a_cut_flac_is_answered_from_what_decodes(pipe, male, tmp_path):
    """A FLAC cut mid-frame used to be an error ("decoder lost sync"); now ok, noted truncated."""
    path, wave, _ = male
    data = Path(path).read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) * 3 // 4])
    r = pipe(cut)
    assert r.status == "ok" and r.label == "male" and r.quality[-1] == "truncated", r
    assert 0.5 * len(wave) / SR < r.duration_s < 0.8 * len(wave) / SR


@pytest.mark.parametrize("kind, reason", [("loop", "symlink_loop"), ("dangling", "broken_symlink"),
                                          ("folder", "not_a_file"), ("gone", "missing")])
def test_odd_paths_get_their_own_reason(pipe, tmp_path, kind, reason):
    p = tmp_path / f"{kind}.wav"
    if kind == "loop":
        os.symlink(tmp_path / "other.wav", p)
        os.symlink(p, tmp_path / "other.wav")
    elif kind == "dangling":
        os.symlink(tmp_path / "nowhere.wav", p)
    elif kind == "folder":
        p.mkdir()
    r = pipe(p)
    assert (r.status, r.reason, r.label) == ("error", reason, UNKNOWN), r


def test_predict_lists_a_symlink_loop_in_a_folder_so_it_gets_a_row(pipe, male, tmp_path):
    """``predict`` on a folder used to skip a symlink loop with no row and no warning."""
    from src.predict import list_inputs, predict_files

    os.symlink(male[0], tmp_path / "real.flac")
    os.symlink(tmp_path / "b.wav", tmp_path / "a.wav")
    os.symlink(tmp_path / "a.wav", tmp_path / "b.wav")
    files = list_inputs(tmp_path)
    assert [f.name for f in files] == ["a.wav", "b.wav", "real.flac"]
    results = {Path(r.path).name: r for r in predict_files(pipe, files, timeline=False, progress=False)}
    assert (results["a.wav"].status, results["a.wav"].reason) == ("error", "symlink_loop")
    assert results["real.flac"].label == "male"


def test_extraction_records_each_odd_manifest_row_with_its_own_reason(tmp_path, male, make_cfg):
    """A symlink loop or a folder in a manifest used to be recorded as ``missing``."""
    from src.data.manifest import write_manifest
    from src.embeddings.store import embeddings_path, iter_lines
    from src.extract import run_extract

    os.symlink(tmp_path / "loop2.wav", tmp_path / "loop1.wav")
    os.symlink(tmp_path / "loop1.wav", tmp_path / "loop2.wav")
    os.symlink(tmp_path / "gone.wav", tmp_path / "dangling.wav")
    (tmp_path / "folder.wav").mkdir()
    data = Path(male[0]).read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) * 3 // 4])
    names = {"loop1.wav": "symlink_loop", "dangling.wav": "broken_symlink", "folder.wav": "not_a_file",
             "gone.wav": "missing", "cut.flac": None}
    rows = [{"path": n, "speaker": f"s{i}", "gender": "male", "id": n} for i, n in enumerate(names)]
    manifest = write_manifest(rows, tmp_path / "manifest.csv")
    out_dir = tmp_path / "out"
    run_extract(make_cfg("data=manifest", f"data.manifest_path={manifest}", f"paths.embeddings_dir={out_dir}"))
    records = {r["id"]: r for r in iter_lines(embeddings_path(out_dir, "resemblyzer"), strict=True)}
    assert {k: r.get("reason") for k, r in records.items()} == names
    assert records["cut.flac"]["status"] == "ok" and records["cut.flac"]["embedding"]
