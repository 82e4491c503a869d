"""Silero VAD (the sequence ONNX model, and the batched JIT model) against Silero's own per-file
``get_speech_timestamps``, on real speech."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.data.audio import SAMPLE_RATE_HZ, load_audio
from src.vad.params import VadParams, VadSettings
from src.vad.silero import SileroSegmenter, is_sequence_model, join_segments, load_silero_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ten_waves(clips_by_duration) -> list[np.ndarray]:
    """Ten real clips spread over the sample's range of lengths, shortest to longest."""
    idx = np.linspace(0, len(clips_by_duration) - 1, 10).round().astype(int)
    waves = [load_audio(clips_by_duration[i].path) for i in idx]
    assert len({len(w) for w in waves}) == 10
    return waves


@pytest.fixture(scope="module")
def stock_model():
    """A second copy of the JIT model, for the stock per-file function."""
    return load_silero_model()


def _stock(waves, model, **params) -> list[list[dict]]:
    from silero_vad import get_speech_timestamps

    return [get_speech_timestamps(torch.from_numpy(w), model, **params) for w in waves]


def test_default_segmenter_is_the_sequence_onnx_model(segmenter):
    assert segmenter.backend == "onnx" and is_sequence_model(segmenter.model)


@pytest.mark.parametrize("backend", ["onnx", "jit"])
def test_segments_equal_stock_per_file(segmenter, stock_model, ten_waves, backend):
    seg = segmenter if backend == "onnx" else SileroSegmenter(segmenter.params, batch_size=4, model=stock_model)
    assert seg.backend == backend
    found = seg.timestamps(ten_waves)
    assert found == _stock(ten_waves, stock_model)
    assert all(len(ts) >= 1 for ts in found), "real speech should have speech segments"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="vad.backend='tflite'"):
        VadSettings(backend="tflite")


def test_batches_smaller_than_the_input_and_shuffled_order(stock_model, ten_waves):
    """Several model batches, clips out of length order: each clip keeps its own segments."""
    params = VadParams(threshold=0.6, min_silence_duration_ms=50, speech_pad_ms=10)
    seg = SileroSegmenter(params, batch_size=3, model=stock_model)
    order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]
    waves = [ten_waves[i] for i in order]
    expected = _stock(waves, stock_model, threshold=0.6, min_silence_duration_ms=50, speech_pad_ms=10)
    assert seg.timestamps(waves) == expected


@pytest.mark.parametrize("backend", ["onnx", "jit"])
def test_probabilities_match_per_file_model_calls(segmenter, stock_model, ten_waves, backend):
    waves = ten_waves[:3]
    seg = segmenter if backend == "onnx" else SileroSegmenter(segmenter.params, model=load_silero_model())
    probs = seg.speech_probs(waves)
    for w, p in zip(waves, probs):
        stock_model.reset_states()
        x = torch.nn.functional.pad(torch.from_numpy(w), (0, -len(w) % 512))
        ref = np.array([stock_model(x[k:k + 512], SAMPLE_RATE_HZ).item() for k in range(0, len(x), 512)])
        assert p.shape == (-(-len(w) // 512),)
        np.testing.assert_allclose(p, ref, atol=1e-4)


def test_silence_and_low_noise_have_no_speech(segmenter, stock_model, ten_waves):
    rng = np.random.default_rng(0)
    silence = np.zeros(3 * SAMPLE_RATE_HZ, np.float32)
    noise = rng.normal(0.0, 0.003, 4 * SAMPLE_RATE_HZ).astype(np.float32)  # about -50 dBFS
    empty = np.zeros(0, np.float32)
    waves = [silence, ten_waves[4], noise, empty]
    ts = segmenter.timestamps(waves)
    assert ts[0] == [] and ts[2] == [] and ts[3] == []
    assert ts[1] == _stock([ten_waves[4]], stock_model)[0] != []
    assert [len(s) for s in segmenter.speech_only(waves)] == [0, sum(t["end"] - t["start"] for t in ts[1]), 0, 0]


def test_speech_only_joins_the_segments(segmenter, ten_waves):
    wave = ten_waves[-1]
    (ts,) = segmenter.timestamps([wave])
    (speech,) = segmenter.speech_only([wave])
    np.testing.assert_array_equal(speech, np.concatenate([wave[t["start"]:t["end"]] for t in ts]))
    assert speech.dtype == np.float32
    assert join_segments(wave, []).shape == (0,)


def test_a_long_recording_in_pieces_is_close_to_the_stock_call(segmenter, stock_model, sample_clips):
    """An 8-minute real recording (the sample's clips twice over, end to end): the sequence ONNX
    model steps it whole, as the stock call does; the JIT segmenter cuts it into 30 s pieces after
    5 s of warm-up each, and almost every sample gets the stock call's decision."""
    wave = np.concatenate([load_audio(c.path) for c in sample_clips] * 2)
    assert len(wave) > 8 * 60 * 16_000
    pieces = SileroSegmenter(segmenter.params, batch_size=32, model=stock_model)  # 30 s pieces (default)
    whole = SileroSegmenter(segmenter.params, batch_size=32, model=stock_model, long_chunk_s=None)
    assert whole.timestamps([wave])[0] == _stock([wave], stock_model)[0]  # whole: exactly the stock call
    assert segmenter.timestamps([wave])[0] == whole.timestamps([wave])[0]  # the sequence model: the same

    def mask(ts):
        m = np.zeros(len(wave), bool)
        for s in ts:
            m[s["start"]:s["end"]] = True
        return m

    stock, cut = mask(whole.timestamps([wave])[0]), mask(pieces.timestamps([wave])[0])
    assert (stock == cut).mean() >= 0.995
    assert abs(int(cut.sum()) - int(stock.sum())) / stock.sum() < 0.01  # speech time within 1 %


def test_a_second_look_finds_speech_that_scores_low_and_still_none_in_noise(speech_clip):
    """``retry_below_s``: a clip with too little speech at 0.5 is looked at again at the segmenter's
    ``retry_threshold`` (screamed CREMA-D clips: 39 of 42 recovered). A real voice at -66 dBFS
    scores under 0.5 throughout; silence, noise, hum and a tone stay speech-free."""
    from src.vad.silero import SileroSegmenter, speech_samples

    seg = SileroSegmenter(retry_threshold=0.15)
    _, wave = speech_clip
    faint = (wave * (0.0005 / np.abs(wave).max())).astype(np.float32)
    assert speech_samples(seg.timestamps([faint])[0]) == 0
    assert speech_samples(seg.timestamps([faint], retry_below_s=0.25)[0]) > 0.5 * SAMPLE_RATE_HZ
    assert seg.timestamps([wave], retry_below_s=0.25) == seg.timestamps([wave])  # enough speech: no second look
    rng = np.random.default_rng(0)
    sr = SAMPLE_RATE_HZ
    t = np.arange(3 * sr) / sr
    for other in (np.zeros(3 * sr), 0.1 * rng.standard_normal(3 * sr), np.cumsum(rng.standard_normal(3 * sr)) / 300,
                  0.3 * np.sin(2 * np.pi * 50 * t), 0.3 * np.sin(2 * np.pi * 440 * t)):
        assert seg.timestamps([other.astype(np.float32)], retry_below_s=0.25) == [[]]
