"""A timeline's windows computed in one pass (``embed_slices``), on real speech.

The timeline scores a 1.5 s window of speech every 0.5 s. Those windows are slices of the
recording's joined speech, so an encoder may compute them all at once: eGeMAPS runs openSMILE
once over the speech and summarises per window (one ``process_signal`` per window cost ~26 ms
and made the timeline 3.5x slower than the whole-file answer), and the acoustic encoder computes
its STFT, YIN and LPC frames once and summarises them per window. Their values are close to, not
equal to, the per-window ones (a window's edge frames see the speech beside it); these tests
bound the difference on real speech, and check that Resemblyzer gets exactly the per-window
vectors it got before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from src.data.audio import load_audio
from src.encoders.base import embed_slices
from src.inference.pipeline import GenderPipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "audio"
# VCTK p225 and p228 are women, p226 and p227 men (VCTK's speaker table); one clip each, in turn
TURNS = [("vctk-p225", "female"), ("vctk-p226", "male"), ("vctk-p228", "female"), ("vctk-p227", "male")]


@pytest.fixture(scope="module")
def default_pipe() -> GenderPipeline:
    return GenderPipeline.from_pretrained("default")


@pytest.fixture(scope="module")
def conversation() -> tuple[np.ndarray, list[str]]:
    """Four real VCTK clips, women and men in turn, with 0.5 s of silence between them."""
    parts = []
    for speaker, _ in TURNS:
        parts += [load_audio(min((SAMPLE / speaker).glob("*.flac"))), np.zeros(8000, np.float32)]
    return np.concatenate(parts), [g for _, g in TURNS]


@pytest.fixture(scope="module")
def windows(default_pipe, conversation):
    wave, _ = conversation
    segments = default_pipe.segmenter.timestamps([wave])[0]
    return default_pipe.timeline_windows(wave, segments)


def test_windows_are_the_speech_around_each_hop(default_pipe, conversation, windows):
    wave, _ = conversation
    scored, bounds, speech = windows
    segments = default_pipe.segmenter.timestamps([wave])[0]
    mask = np.zeros(len(wave), bool)
    for s in segments:
        mask[s["start"]:s["end"]] = True
    hop, half = 8000, 12000
    for k, (a, b) in zip(scored, bounds):  # the old definition: wave[lo:hi][mask[lo:hi]]
        c = hop // 2 + k * hop
        lo, hi = max(0, c - half), min(len(wave), c + half)
        old, new = wave[lo:hi][mask[lo:hi]], speech[a:b]
        assert len(new) == len(old)  # the same samples, up to the DC offset removed from the whole speech
        assert np.allclose(new - new.mean(dtype=np.float64), old - old.mean(dtype=np.float64), atol=1e-6)
    assert len(scored) > 40


def test_other_encoders_get_exactly_the_per_window_vectors(encoder, windows):
    """Resemblyzer has no one-pass way: each window embedded alone, its own DC offset removed."""
    _, bounds, speech = windows
    got = embed_slices(encoder, speech, bounds[:12])
    one_by_one = encoder.embed([speech[a:b] - np.float32(speech[a:b].mean(dtype=np.float64)) for a, b in bounds[:12]])
    np.testing.assert_array_equal(got, one_by_one)


def test_egemaps_in_one_pass_is_close_to_one_call_per_window(default_pipe, windows):
    egemaps = default_pipe.encoder.parts[1]
    assert egemaps.name == "egemaps"
    _, bounds, speech = windows
    one_pass = egemaps.embed_slices(speech, bounds)
    per_window = egemaps.embed([speech[a:b] for a, b in bounds])
    assert one_pass.shape == per_window.shape == (len(bounds), 88)
    spread = per_window.std(0) + 1e-6
    diff = np.abs(one_pass - per_window) / spread  # in units of each feature's spread over the windows
    # measured: median 0.057, 95th percentile 0.96 (a few stddevNorm features of near-constant
    # windows swing far more); what matters is the classifier's answer, below
    assert np.median(diff) < 0.1, np.median(diff)
    assert np.quantile(diff, 0.95) < 1.5, np.quantile(diff, 0.95)


def test_acoustic_in_one_pass_is_close_to_one_call_per_window(default_pipe, windows):
    acoustic = default_pipe.encoder.parts[2]
    assert acoustic.name == "acoustic"
    _, bounds, speech = windows
    one_pass = acoustic.embed_slices(speech, bounds)
    per_window = acoustic.embed([speech[a:b] - np.float32(speech[a:b].mean(dtype=np.float64)) for a, b in bounds])
    assert one_pass.shape == per_window.shape == (len(bounds), 222)
    diff = np.abs(one_pass - per_window) / (per_window.std(0) + 1e-6)  # in units of each feature's spread
    # measured: median 0.008, 95th percentile 0.14 (F0, formants and contrast move most: 95th 0.5-0.7)
    assert np.median(diff) < 0.05, np.median(diff)
    assert np.quantile(diff, 0.95) < 0.5, np.quantile(diff, 0.95)
    # in blocks of frames (bounded memory): the same windows wherever the blocks fall
    import src.encoders.acoustic as acoustic_module

    old = acoustic_module.WINDOW_BLOCK_S
    try:
        acoustic_module.WINDOW_BLOCK_S = 4.0
        blocked = acoustic.embed_slices(speech, bounds)
    finally:
        acoustic_module.WINDOW_BLOCK_S = old
    assert np.abs(blocked - per_window).mean() < 2 * np.abs(one_pass - per_window).mean() + 1e-3
    egemaps_and_resemblyzer = [embed_slices(p, speech, bounds) for p in default_pipe.encoder.parts[:2]]
    p_new, p_old = (default_pipe.classifier.predict_proba(np.concatenate(egemaps_and_resemblyzer + [x], 1))[:, 1]
                    for x in (one_pass, per_window))
    dp = np.abs(p_new - p_old)  # measured: mean 0.003, 90th percentile 0.012, max 0.018
    assert dp.mean() < 0.02 and dp.max() < 0.1, (dp.mean(), dp.max())


def test_default_model_timeline_barely_moves_and_follows_the_turns(default_pipe, conversation, windows):
    wave, genders = conversation
    _, bounds, speech = windows
    p_one_pass = default_pipe.classifier.predict_proba(embed_slices(default_pipe.encoder, speech, bounds))[:, 1]
    p_per_window = default_pipe.p_male([speech[a:b] for a, b in bounds])  # the timeline's old way
    # measured: mean 0.014, 90th percentile 0.042, max 0.11 (eGeMAPS alone in one pass: 0.011, 0.03, 0.19)
    dp = np.abs(p_one_pass - p_per_window)
    assert dp.mean() < 0.05 and np.quantile(dp, 0.9) < 0.1, (dp.mean(), np.quantile(dp, 0.9), dp.max())
    same = np.mean((p_one_pass >= 0.5) == (p_per_window >= 0.5))
    assert same >= 0.9, same
    r = default_pipe(wave, timeline=True)
    runs = []
    for s in r.timeline:
        if s.label in ("female", "male") and (not runs or runs[-1] != s.label):
            runs.append(s.label)
    assert runs == genders, [(s.start_s, s.end_s, s.label) for s in r.timeline]


def test_resemblyzer_mel_in_pieces_is_the_same(conversation):
    """Long speech's mel spectrogram is computed in pieces (bounded memory), with the same numbers."""
    from resemblyzer.audio import wav_to_mel_spectrogram

    from src.encoders.resemblyzer import mel_spectrogram

    wave, _ = conversation
    whole = wav_to_mel_spectrogram(wave)
    for chunk_frames in (500, 777, len(whole) - 1):
        np.testing.assert_array_equal(mel_spectrogram(wave, chunk_frames), whole)


def test_egemaps_whole_and_windows_in_one_run_equal_the_two_calls(default_pipe, windows):
    """One openSMILE run with two functionals sections (whole input; per window) gives, bit for bit,
    what ``embed`` and ``embed_slices`` give separately."""
    from src.encoders.egemaps import whole_and_window_config

    egemaps = default_pipe.encoder.parts[1]
    _, bounds, speech = windows
    whole, per_window = egemaps.embed_with_slices(speech, bounds)
    np.testing.assert_array_equal(whole, egemaps.embed([speech])[0])
    np.testing.assert_array_equal(per_window, egemaps.embed_slices(speech, bounds))
    assert per_window.shape == (len(bounds), 88) and np.isfinite(whole).all() and whole.any()
    conf = whole_and_window_config("/x/frame-list.conf.inc")
    # each copied functionals component (the package's own are included from its files) takes the frame list
    assert conf.count("\\{/x/frame-list.conf.inc}") == conf.count("type=cFunctionals") >= 9


def test_whole_answer_is_the_same_with_and_without_the_timeline(default_pipe, conversation):
    wave, _ = conversation
    with_timeline, without = default_pipe.classify_wave(wave, timeline=True), default_pipe.classify_wave(wave)
    assert with_timeline.p_male == without.p_male and with_timeline.p_age_group == without.p_age_group
    assert with_timeline.timeline and not without.timeline


def test_acoustic_whole_and_windows_from_one_set_of_frames(default_pipe, windows):
    """The whole speech's acoustic features, summarised from the same frames as its windows, are
    ``features`` of it bit for bit."""
    acoustic = default_pipe.encoder.parts[2]
    _, bounds, speech = windows
    whole, per_window = acoustic.embed_with_slices(speech, bounds)
    np.testing.assert_array_equal(whole, acoustic.embed([speech])[0])
    np.testing.assert_array_equal(per_window, acoustic.embed_slices(speech, bounds))
    assert whole[208] > 0 and np.isfinite(per_window).all()  # a voiced F0
