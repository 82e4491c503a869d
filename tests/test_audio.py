"""``load_audio`` on real speech: formats, rates, channels, bad files, memory."""

from __future__ import annotations

import os
import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr

from src.data.audio import SAMPLE_RATE_HZ, AudioError, decode_audio, load_audio


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def _assert_16k_like(out: np.ndarray, ref: np.ndarray, min_corr: float) -> None:
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - len(ref)) <= 0.01 * len(ref), (len(out), len(ref))
    assert np.isfinite(out).all()
    assert _corr(out, ref) > min_corr


def test_flac_decodes_like_libsndfile(speech_clip):
    path, wave = speech_clip
    assert path.suffix == ".flac"
    raw, rate_hz = sf.read(str(path), dtype="float32")
    assert rate_hz == SAMPLE_RATE_HZ and raw.ndim == 1
    np.testing.assert_array_equal(wave, raw)


def test_wav(speech_clip, tmp_path):
    _, wave = speech_clip
    path = tmp_path / "clip.wav"
    sf.write(path, wave, SAMPLE_RATE_HZ, subtype="PCM_16")
    out = load_audio(path)
    assert len(out) == len(wave)
    np.testing.assert_allclose(out, wave, atol=1.0 / 2**15 + 1e-7)


@pytest.mark.parametrize("fmt, subtype", [("MP3", "MPEG_LAYER_III"), ("OGG", "VORBIS")])
def test_lossy_formats(speech_clip, tmp_path, fmt, subtype):
    _, wave = speech_clip
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot handle {fmt}")
    path = tmp_path / f"clip.{fmt.lower()}"
    try:
        sf.write(path, wave, SAMPLE_RATE_HZ, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, ValueError, TypeError) as e:
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}/{subtype}: {e}")
    _assert_16k_like(load_audio(path), wave, min_corr=0.9)


@pytest.mark.parametrize("rate_hz", [8_000, 44_100, 48_000])
def test_other_rates_come_back_at_16k(speech_clip, tmp_path, rate_hz):
    _, wave = speech_clip
    at_rate = soxr.resample(wave, SAMPLE_RATE_HZ, rate_hz).astype(np.float32)
    path = tmp_path / f"clip_{rate_hz}.wav"
    sf.write(path, at_rate, rate_hz, subtype="PCM_16")
    out = load_audio(path)
    # Length and alignment at 16 kHz; an 8 kHz file has lost everything over 4 kHz.
    _assert_16k_like(out, wave, min_corr=0.85 if rate_hz < SAMPLE_RATE_HZ else 0.98)
    # Back at the file's rate, the decoded signal is the file's signal.
    assert _corr(soxr.resample(out, SAMPLE_RATE_HZ, rate_hz), at_rate) > 0.995


def test_stereo_becomes_the_channel_mean(clips_by_duration, tmp_path):
    left, right = (load_audio(c.path) for c in clips_by_duration[-2:])
    n = min(len(left), len(right))
    stereo = np.stack([left[:n], right[:n]], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, SAMPLE_RATE_HZ, subtype="FLOAT")
    out = load_audio(path)
    assert out.shape == (n,)
    np.testing.assert_allclose(out, (left[:n] + right[:n]) / 2, atol=1e-6)


def test_custom_output_rate(speech_clip):
    path, wave = speech_clip
    out = load_audio(path, sample_rate_hz=8_000)
    assert abs(len(out) - len(wave) / 2) <= 1


def _expect(path, reason, **kwargs) -> AudioError:
    with pytest.raises(AudioError) as info:
        load_audio(path, **kwargs)
    assert info.value.reason == reason, str(info.value)
    assert str(path) in info.value.message
    return info.value


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.flac", "missing")


def test_a_folder_is_not_a_file(tmp_path):
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    _expect(folder, "not_a_file")


def test_a_symlink_loop_and_a_dangling_link_have_their_own_reasons(tmp_path):
    os.symlink(tmp_path / "b.wav", tmp_path / "a.wav")
    os.symlink(tmp_path / "a.wav", tmp_path / "b.wav")
    _expect(tmp_path / "a.wav", "symlink_loop")
    os.symlink(tmp_path / "gone.flac", tmp_path / "dangling.flac")
    _expect(tmp_path / "dangling.flac", "broken_symlink")


def test_a_symlink_to_a_real_clip_decodes(speech_clip, tmp_path):
    os.symlink(speech_clip[0], tmp_path / "link.flac")
    assert np.array_equal(load_audio(tmp_path / "link.flac"), speech_clip[1])


@pytest.mark.parametrize("rate_hz", [1, 3999, 192_001, 4_000_000])
def test_a_rate_outside_4_to_192_khz_is_refused_before_decoding(speech_clip, tmp_path, rate_hz):
    """The probe's 1 kB WAV whose header says 1 Hz became 500 s of audio; now it is refused."""
    path = tmp_path / f"rate_{rate_hz}.wav"
    sf.write(path, speech_clip[1][:500], SAMPLE_RATE_HZ, subtype="PCM_16")  # a real 1 kB WAV ...
    data = bytearray(path.read_bytes())
    data[24:32] = struct.pack("<II", rate_hz, 2 * rate_hz)  # ... whose header lies about its rate
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).samplerate == rate_hz
    _expect(path, "bad_rate")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    _expect(path, "empty_file")


def test_header_without_samples(tmp_path):
    path = tmp_path / "no_frames.wav"
    sf.write(path, np.zeros(0, np.float32), SAMPLE_RATE_HZ)
    _expect(path, "empty_audio")


def test_a_header_alone_is_unreadable(speech_clip, tmp_path):
    path = tmp_path / "header_only.flac"
    path.write_bytes(speech_clip[0].read_bytes()[:100])
    _expect(path, "unreadable")


@pytest.mark.parametrize("damage", ["cut", "garbled_body"])
def test_a_damaged_flac_keeps_what_decodes_before_the_damage(speech_clip, tmp_path, damage):
    """A FLAC cut mid-frame used to lose the whole clip ("decoder lost sync")."""
    path, wave = speech_clip
    data = path.read_bytes()
    noise = np.random.default_rng(0).bytes(len(data))
    damaged = {"cut": data[: len(data) // 2],
               "garbled_body": data[: len(data) // 3] + noise[: len(data) // 3] + data[2 * len(data) // 3:]}[damage]
    bad = tmp_path / f"{damage}.flac"
    bad.write_bytes(damaged)
    out = decode_audio(bad)
    assert out.truncated
    fraction = {"cut": 0.5, "garbled_body": 1 / 3}[damage]  # of the bytes, so about of the samples
    assert 0.5 * fraction * len(wave) < len(out.wave) < 1.05 * fraction * len(wave), (len(out.wave), len(wave))
    np.testing.assert_array_equal(out.wave, wave[: len(out.wave)])  # exactly the clip's start
    assert not decode_audio(path).truncated


def test_a_cut_wav_keeps_what_is_there_and_says_so(speech_clip, tmp_path):
    path, wave = speech_clip
    whole = tmp_path / "whole.wav"
    sf.write(whole, wave, SAMPLE_RATE_HZ, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = decode_audio(cut)
    assert out.truncated and abs(len(out.wave) - len(wave) // 2) < 64
    assert not decode_audio(whole).truncated


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.flac"
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    _expect(path, "unreadable")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("path,speaker,gender\nthis is not audio\n" * 20)
    _expect(path, "unreadable")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(speech_clip, tmp_path, bad):
    wave = speech_clip[1].copy()
    wave[len(wave) // 2] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, wave, SAMPLE_RATE_HZ, subtype="FLOAT")
    _expect(path, "non_finite")


def test_too_long_is_refused_from_the_header(speech_clip):
    path, wave = speech_clip
    duration_s = len(wave) / SAMPLE_RATE_HZ
    _expect(path, "too_long", max_duration_s=duration_s - 0.5)
    assert len(load_audio(path, max_duration_s=duration_s + 0.5)) == len(wave)


def test_long_stereo_48k_decodes_in_bounded_memory(speech_clip, tmp_path):
    """10 min of 48 kHz stereo PCM: peak traced memory stays near the 16 kHz mono output size."""
    _, wave = speech_clip
    rate_hz, minutes = 48_000, 10
    n_frames = minutes * 60 * rate_hz
    hi = soxr.resample(wave, SAMPLE_RATE_HZ, rate_hz).astype(np.float32)
    block = np.stack([hi, -0.5 * hi], axis=1)  # channel mean = hi / 4
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", rate_hz, 2, "PCM_16") as f:
        for start in range(0, n_frames, len(block)):
            f.write(block[: min(len(block), n_frames - start)])
    del block, hi
    try:
        tracemalloc.start()
        out = load_audio(path)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        path.unlink()
    expected_len = n_frames * SAMPLE_RATE_HZ // rate_hz
    assert abs(len(out) - expected_len) <= 0.001 * expected_len
    output_bytes = expected_len * np.dtype(np.float32).itemsize
    assert peak_bytes <= 2.2 * output_bytes, f"peak {peak_bytes / 1e6:.1f} MB for a {output_bytes / 1e6:.1f} MB output"
    # the content is the tiled clip (mono mean = clip / 4), in place
    np.testing.assert_allclose(out[: len(wave)].std(), wave.std() / 4, rtol=0.02)
    assert _corr(out[len(wave): 2 * len(wave)], wave) > 0.98
