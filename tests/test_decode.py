"""Audio in any form, on real speech with the shipped model: phone and browser containers (m4a,
mp4, webm, opus, made here from the sample's clips with PyAV's own encoders), arrays of every
dtype and layout, a channel choice, the errors; and ``mixed`` only for two established voices.

The clips are CMU ARCTIC's axb (a woman) and aew (a man) from ``data/sample``; they are training
data of the shipped model, so these tests check decoding and the two-voice rule, not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from src.data.audio import SAMPLE_RATE_HZ, AudioError, decode_audio, load_audio, resample
from src.inference.pipeline import GenderPipeline
from src.labels import MIXED

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = SAMPLE_RATE_HZ
SAMPLE_AUDIO = Path(__file__).resolve().parents[1] / "data" / "sample" / "audio"
# name -> (suffix, PyAV container format, codec, sample rate, channels): what phones and browsers record
CONTAINERS = {
    "m4a-aac-44k-stereo": ("m4a", "ipod", "aac", 44_100, 2),   # iPhone Voice Memos, Android recorders
    "mp4-aac-48k-mono": ("mp4", "mp4", "aac", 48_000, 1),      # a video's sound track
    "webm-opus-48k-mono": ("webm", "webm", "libopus", 48_000, 1),  # MediaRecorder in Chrome/Firefox
    "ogg-opus-48k-stereo": ("opus", "ogg", "libopus", 48_000, 2),  # WhatsApp voice notes
}


def encode(wave: np.ndarray, path: Path, fmt: str, codec: str, rate_hz: int, channels: int) -> Path:
    """Write 16 kHz mono ``wave`` with FFmpeg's encoder ``codec`` into container ``fmt`` (PyAV)."""
    import av

    x = resample(wave, SR, rate_hz)
    layout = "mono" if channels == 1 else "stereo"
    data = np.ascontiguousarray(np.tile(x[None, :], (channels, 1)), np.float32)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate_hz, layout=layout)
        convert = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate_hz)
        step = stream.codec_context.frame_size or 1024
        for i in [*range(0, data.shape[1], step), None]:
            frames = [None]
            if i is not None:
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, i:i + step]), format="fltp",
                                                   layout=layout)
                frame.sample_rate = rate_hz
                frames = [frame]
            for f in frames:
                for g in convert.resample(f):
                    out.mux(stream.encode(g))
        out.mux(stream.encode(None))
    return path


def best_corr(a: np.ndarray, b: np.ndarray, max_lag: int = 4000) -> float:
    """The highest correlation of ``a`` delayed by 0..max_lag samples against ``b`` (codec delays)."""
    n = min(len(a), len(b)) - max_lag
    xc = np.fft.irfft(np.fft.rfft(a, 2 * len(a)) * np.conj(np.fft.rfft(b[:n], 2 * len(a))))[:max_lag]
    k = int(np.argmax(xc))  # the delay, found by cross-correlation, then the correlation at it
    return float(np.corrcoef(a[k:k + n], b[:n])[0, 1])


@pytest.fixture(scope="module")
def pipe() -> GenderPipeline:
    return GenderPipeline.from_pretrained()


@pytest.fixture(scope="module")
def voices() -> dict[str, np.ndarray]:
    """gender -> both sample clips of one speaker joined (about 6-7 s of real speech)."""
    out = {}
    for gender, speaker in (("female", "arctic-axb"), ("male", "arctic-aew")):
        clips = sorted((SAMPLE_AUDIO / speaker).glob("*.flac"))
        assert len(clips) == 2, clips
        out[gender] = np.concatenate([load_audio(c) for c in clips])
    return out


@pytest.fixture(scope="module")
def encoded(voices, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (file, gender): each container once per voice."""
    d = tmp_path_factory.mktemp("containers")
    return {f"{name}-{g}": (encode(voices[g], d / f"{g}.{spec[0]}", *spec[1:]), g)
            for name, spec in CONTAINERS.items() for g in ("female", "male")}


# --------------------------------------------------------------------------- containers

@pytest.mark.parametrize("name", CONTAINERS)
def test_phone_and_browser_containers_decode_to_the_speech(encoded, voices, name):
    for gender in ("female", "male"):
        path, _ = encoded[f"{name}-{gender}"]
        if path.suffix in (".m4a", ".mp4", ".webm"):
            with pytest.raises(sf.LibsndfileError):
                sf.info(str(path))  # libsndfile cannot read these: FFmpeg does
        d = decode_audio(path)
        ref = voices[gender]
        assert d.wave.dtype == np.float32 and d.wave.ndim == 1 and not d.truncated
        assert abs(len(d.wave) - len(ref)) <= 0.1 * SR, (len(d.wave), len(ref))  # codec padding only
        assert best_corr(d.wave, ref) > 0.95


@pytest.mark.parametrize("name", CONTAINERS)
def test_phone_and_browser_containers_get_the_flac_answer(pipe, encoded, voices, name):
    for gender in ("female", "male"):
        path, _ = encoded[f"{name}-{gender}"]
        r, ref = pipe(path), pipe(voices[gender])
        assert (r.status, r.label) == ("ok", gender) == (ref.status, ref.label), (r, ref)
        assert r.p_male == pytest.approx(ref.p_male, abs=0.1)
        assert r.path == str(path)


def test_what_ffmpeg_cannot_decode_says_so(pipe, encoded, tmp_path):
    junk = tmp_path / "voice-note.m4a"
    junk.write_bytes(b"\x00\x00\x00\x18ftypM4A " + np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioError) as e:
        decode_audio(junk)
    assert e.value.reason == "unreadable" and "FFmpeg" in str(e.value) and "\n" not in str(e.value)
    r = pipe(junk)
    assert (r.status, r.reason) == ("error", "unreadable")
    cut = tmp_path / "cut.webm"  # a recording whose upload stopped part way: what decoded is used
    full = encoded["webm-opus-48k-mono-female"][0].read_bytes()
    cut.write_bytes(full[:len(full) // 2])
    d = decode_audio(cut)
    assert 0.3 * len(load_audio(encoded["webm-opus-48k-mono-female"][0])) < len(d.wave)


def test_channel_choice_on_a_stereo_file(pipe, voices, tmp_path):
    """A call recorded with one speaker per channel: each channel is its own answer."""
    n = min(len(voices["female"]), len(voices["male"]))
    stereo = np.stack([voices["female"][:n], voices["male"][:n]], axis=1)
    path = tmp_path / "call.wav"
    sf.write(path, stereo, SR, subtype="PCM_16")
    assert pipe(path, channel=0).label == "female"
    assert pipe(path, channel=1).label == "male"
    m4a = encode(voices["female"][:n], tmp_path / "left.m4a", "ipod", "aac", 44_100, 2)
    assert decode_audio(m4a, channel=1).wave.shape == decode_audio(m4a).wave.shape
    assert pipe(path, channel=2).reason == "bad_channel"


# --------------------------------------------------------------------------- arrays

def test_every_array_form_gets_the_same_answer(pipe, voices):
    """The issue's case first: int16 from scipy/soundfile was read as float and a woman became male."""
    wave = voices["female"]
    ref = pipe(wave)
    assert (ref.status, ref.label) == ("ok", "female")
    i16 = np.round(wave * 32767).astype(np.int16)
    u8 = (np.round(wave * 127) + 128).astype(np.uint8)
    w44 = resample(wave, SR, 44_100)
    forms = {
        "int16 + rate": (i16, {"sample_rate_hz": SR}),
        "int32": ((i16.astype(np.int32) << 16), {}),
        "uint8 (8-bit WAV)": (u8, {}),
        "float64": (wave.astype(np.float64), {}),
        "(frames, 2) int16": (np.stack([i16, i16], axis=1), {}),
        "(2, frames) float": (np.stack([wave, wave]), {}),
        "(array, rate) at 44.1 kHz": ((w44, 44_100), {}),
        "pyannote dict, torch (1, n)": ({"waveform": torch.from_numpy(w44)[None], "sample_rate": 44_100}, {}),
        "datasets dict": ({"array": w44.astype(np.float64), "sampling_rate": 44_100}, {}),
    }
    got = {k: pipe(a, **kw) for k, (a, kw) in forms.items()}
    summary = {k: (r.status, r.label, r.p_male) for k, r in got.items()}
    assert all(r.status == "ok" and r.label == "female" for r in got.values()), summary
    # 8 bits lose most of a quiet clip, so uint8 is held to the same 8-bit wave given as float
    # (the 8-bit WAV convention: (x - 128) / 128); every other form carries the whole wave
    refs = {k: ref for k in forms} | {"uint8 (8-bit WAV)": pipe((u8.astype(np.float32) - 128) / 128)}
    assert all(abs(r.p_male - refs[k].p_male) < 0.05 for k, r in got.items()), (ref.p_male, summary)


def test_channel_choice_on_an_array(pipe, voices):
    n = min(len(voices["female"]), len(voices["male"]))
    both = np.stack([voices["female"][:n], voices["male"][:n]])  # channels first, as torchaudio loads
    assert pipe(both, channel=0).label == "female"
    assert pipe(both.T.copy(), channel=1).label == "male"


@pytest.mark.parametrize("audio, kwargs, words", [
    (np.zeros((2, 3, 16000), np.float32), {}, "3-D"),
    (np.zeros((100, 100), np.float32), {}, "which axis"),
    (np.arange(16000), {}, "int64"),
    (np.ones(16000, bool), {}, "bool"),
    (np.full(16000, 1000.0, np.float32), {}, "within [-1, 1]"),
    ((16000, np.zeros(16000, np.float32)), {}, "(array, rate)"),
    ((np.zeros(16000, np.float32), 16000, "x"), {}, "tuple of 3"),
    ({"audio": np.zeros(16000)}, {}, "keys"),
    ({"waveform": np.zeros(16000, np.float32), "sample_rate": 16000}, {"sample_rate_hz": 8000}, "two sample rates"),
    (np.zeros(16000, np.float32), {"sample_rate_hz": 1_000_000}, "outside"),
    (b"RIFF....", {}, "type bytes"),
    (np.zeros((16000, 2), np.float32), {"channel": 5}, "channel=5"),
])
def test_what_is_not_audio_is_one_clear_value_error(pipe, audio, kwargs, words):
    with pytest.raises(ValueError) as e:
        pipe(audio, **kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_nan_samples_are_an_error_answer_not_an_exception(pipe, voices):
    w = voices["female"].copy()
    w[100] = np.nan
    r = pipe(w)
    assert (r.status, r.reason) == ("error", "non_finite")


# --------------------------------------------------------------------------- one answer per voice

def test_two_voices_are_mixed_and_keep_the_probability(pipe, voices):
    wave = np.concatenate([voices["female"], np.zeros(SR // 2, np.float32), voices["male"]])
    r = pipe(wave)
    assert r.label == MIXED and r.status == "ok", (r.label, r.reason, r.speaking_time_s)
    whole = pipe(wave, timeline=False)
    assert r.p_male == whole.p_male and r.p_female == whole.p_female is not None  # the whole recording's
    assert [s.label for s in r.timeline] == ["female", "male"], r.timeline  # one segment per voice
    for g in ("female", "male"):  # per-voice times near each side's length
        assert abs(r.speaking_time_s[g] - len(voices[g]) / SR) < 2.0, r.speaking_time_s
    assert "two voices" in r.reason


def test_one_voice_that_wavers_is_not_mixed(pipe, voices):
    """The same man three times: one speaker, whatever his windows say; seen from the inside, the
    two halves the speaker split finds are close in speaker space."""
    wave = np.concatenate([voices["male"]] * 3)
    r = pipe(wave)
    assert r.label == "male", (r.label, r.reason)
    segments = pipe.segmenter.timestamps([wave])[0]
    v = pipe.voices(wave, segments)
    assert not v.two_voices(pipe.timeline_params)
    assert v.distance < pipe.timeline_params.min_voice_distance, v.distance
