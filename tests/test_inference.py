"""``GenderPipeline``, ``StreamingGender`` and the ``predict``/``stream`` verbs on real speech.

One classifier is trained per session on real Resemblyzer embeddings of the bundled
sample (63 clips, 40 speakers; the extraction is shared with ``test_train.py``) into
``tmp_path``. The sample is small, so the conversations below are made of the adult
speakers that run is sure about (no speechocean762 children): these tests check how
recordings are cut, timed and reported, not how well held-out voices are classified
(``bench/stream.py`` measures that on the dev set's test speakers).

A conversation is real clips trimmed to their speech (Silero's first start to last
end) and joined with 0.5 s of silence, so a turn starts exactly where a clip starts.
The command-line runs are real subprocesses, started together once per module (two
at a time) because each one spends seconds importing torch and loading the models.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hydra import compose, initialize_config_module
from test_train import sample_embeddings  # the sample's embeddings, extracted once per session

from src.data.audio import SAMPLE_RATE_HZ, load_audio, resample
from src.inference.outputs import file_id, parse_rttm
from src.inference.pipeline import GenderPipeline, GenderResult
from src.inference.sources import SourceError, file_chunks
from src.inference.streaming import StreamEvent, StreamingGender
from src.labels import CLASSES, UNKNOWN
from src.train import run_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO_DIR = Path(__file__).resolve().parents[1]
SR = SAMPLE_RATE_HZ
GAP_S = 0.5               # silence between turns
TURN_TOLERANCE_S = 1.5    # a turn must show within this much of its start
CHUNK_S = 0.1             # streaming chunk
CLI_TIMEOUT_S = 300


# --------------------------------------------------------------------------- the run and the speech

@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A real run trained (40 epochs) on the sample's real Resemblyzer embeddings."""
    emb_dir = sample_embeddings(tmp_path_factory)
    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose("train", overrides=[f"paths.data_dir={REPO_DIR / 'data'}", f"paths.embeddings_dir={emb_dir}",
                                          "trainer.max_epochs=40", "num_threads=1"])
    run = tmp_path_factory.mktemp("inference-run") / "resemblyzer-2026-01-01_00-00-00"
    run_train(cfg, run)
    return run


@pytest.fixture(scope="session")
def pipe(run_dir) -> GenderPipeline:
    return GenderPipeline.from_run(run_dir)


@dataclass
class Speaker:
    name: str
    gender: str
    paths: list[Path]


@pytest.fixture(scope="session")
def sure_speakers(run_dir) -> list[Speaker]:
    """Adult speakers whose every clip the run got right with p >= 0.8, surest first."""
    df = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False)
    df = df[df.corpus != "speechocean762"]
    df = df.assign(p_true=np.where(df.gender == "male", df.p_male, 1.0 - df.p_male))
    worst = df.groupby("speaker").p_true.min().sort_values(ascending=False)
    out = [Speaker(s, df[df.speaker == s].gender.iloc[0], [Path(p) for p in df[df.speaker == s].path])
           for s, p in worst.items() if p >= 0.8]
    assert sum(s.gender == "female" for s in out) >= 2 and sum(s.gender == "male" for s in out) >= 2, worst
    return out


def trimmed(pipe: GenderPipeline, path: Path) -> np.ndarray:
    """A clip cut to its speech: Silero's first start to its last end."""
    wave = load_audio(path)
    ts = pipe.segmenter.timestamps([wave])[0]
    return wave[ts[0]["start"]:ts[-1]["end"]]


@dataclass
class Conversation:
    wave: np.ndarray
    turns: list[tuple[float, float, str]]  # (start_s, end_s, gender) of each turn's speech
    path: Path

    @property
    def duration_s(self) -> float:
        return len(self.wave) / SR


def join(pipe: GenderPipeline, clips: list[tuple[Path, str]], path: Path) -> Conversation:
    """Trimmed clips with ``GAP_S`` of silence between them, also written as 16-bit WAV."""
    parts, turns, t = [], [], 0.0
    for clip, gender in clips:
        w = trimmed(pipe, clip)
        if parts:
            parts.append(np.zeros(int(GAP_S * SR), np.float32))
            t += GAP_S
        turns.append((t, t + len(w) / SR, gender))
        parts.append(w)
        t += len(w) / SR
    wave = np.concatenate(parts)
    sf.write(path, wave, SR, subtype="PCM_16")
    return Conversation(load_audio(path), turns, path)  # the file's samples, so file and array agree


@pytest.fixture(scope="session")
def conversation(pipe, sure_speakers, tmp_path_factory) -> Conversation:
    """Female, male, female, male: four real adult speakers, one clip each (about 20 s)."""
    fem = [s for s in sure_speakers if s.gender == "female"][:2]
    mal = [s for s in sure_speakers if s.gender == "male"][:2]
    order = [fem[0], mal[0], fem[1], mal[1]]
    return join(pipe, [(s.paths[0], s.gender) for s in order], tmp_path_factory.mktemp("conv") / "conversation.wav")


@pytest.fixture(scope="session")
def one_speaker(pipe, sure_speakers, tmp_path_factory) -> tuple[Speaker, np.ndarray]:
    """The surest speaker with two clips: both clips joined, repeated up to 10 s."""
    spk = next(s for s in sure_speakers if len(s.paths) >= 2)
    path = tmp_path_factory.mktemp("one") / "one_speaker.wav"
    conv = join(pipe, [(p, spk.gender) for p in spk.paths[:2]] * 3, path)
    return spk, conv.wave[:10 * SR]


@pytest.fixture(scope="session")
def clip(sure_speakers) -> tuple[Path, str, np.ndarray]:
    """One real clip of the surest male speaker: (path, gender, 16 kHz samples)."""
    spk = next(s for s in sure_speakers if s.gender == "male")
    return spk.paths[0], spk.gender, load_audio(spk.paths[0])


# --------------------------------------------------------------------------- GenderPipeline: files

def test_classes():
    assert GenderPipeline.classes() == ("female", "male") == CLASSES


def test_path_and_array_give_the_same_answer(pipe, clip):
    path, gender, wave = clip
    by_path, by_array = pipe(path), pipe(wave)
    assert by_path.status == by_array.status == "ok"
    assert by_path.label == by_array.label == gender
    assert by_path.p_male == pytest.approx(by_array.p_male, abs=1e-5)
    assert by_path.p_female == pytest.approx(1.0 - by_path.p_male, abs=1e-5)
    assert by_path.path == str(path) and by_array.path is None
    assert by_path.age_band is None and by_path.p_age_band is None  # an embedding run has no age head


def test_other_rates_clipping_and_dc_offset_still_give_a_label(pipe, clip, tmp_path):
    path, gender, wave = clip
    wav_8k = tmp_path / "clip_8k.wav"
    sf.write(wav_8k, resample(wave, SR, 8000), 8000, subtype="PCM_16")
    results = {
        "8 kHz file": pipe(wav_8k),
        "44.1 kHz array": pipe(resample(wave, SR, 44100), sample_rate_hz=44100),
        "clipped (x8)": pipe(np.clip(wave * 8, -1.0, 1.0)),
        "DC offset +0.3": pipe(wave + 0.3),
    }
    summary = {k: (r.status, r.label, r.p_male) for k, r in results.items()}
    assert all(r.status == "ok" and r.label in CLASSES for r in results.values()), summary
    assert results["8 kHz file"].label == results["44.1 kHz array"].label == gender, summary
    duration_s = len(wave) / SR
    assert all(r.duration_s == pytest.approx(duration_s, abs=0.01) for r in results.values()), summary


def test_silence_is_no_speech(pipe):
    r = pipe(np.zeros(3 * SR, np.float32))
    assert (r.status, r.label, r.p_male) == ("no_speech", UNKNOWN, None)
    assert r.duration_s == 3.0 and r.speech_s == 0.0


@pytest.mark.parametrize("content, reason", [(b"this is not audio\n" * 200, "unreadable"), (b"", "empty_file")])
def test_bad_file_is_an_error_result(pipe, tmp_path, content, reason):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    r = pipe(bad)
    assert (r.status, r.reason, r.label) == ("error", reason, UNKNOWN)
    assert r.path == str(bad)


# --------------------------------------------------------------------------- GenderPipeline: timeline

def boundaries(result: GenderResult) -> list[float]:
    return sorted({b for s in result.timeline for b in (s.start_s, s.end_s)})


def label_runs(result: GenderResult) -> list[str]:
    """Labels of the segments, ``unknown`` dropped and repeats collapsed."""
    runs: list[str] = []
    for s in result.timeline:
        if s.label != UNKNOWN and (not runs or runs[-1] != s.label):
            runs.append(s.label)
    return runs


@pytest.fixture(scope="module")
def conversation_timeline(pipe, conversation) -> GenderResult:
    return pipe(conversation.wave, timeline=True)


def test_timeline_changes_at_each_turn(conversation_timeline, conversation):
    r = conversation_timeline
    segments = [(s.start_s, s.end_s, s.label) for s in r.timeline]
    assert r.status == "ok"
    assert label_runs(r) == [g for _, _, g in conversation.turns], segments
    cuts = boundaries(r)
    for start_s, _, gender in conversation.turns[1:]:
        nearest = min(cuts, key=lambda b: abs(b - start_s))
        assert abs(nearest - start_s) <= TURN_TOLERANCE_S, (start_s, gender, segments)
    assert all(0.0 <= s.start_s < s.end_s <= conversation.duration_s for s in r.timeline), segments


def test_speaking_time_adds_up_to_the_speech(conversation_timeline, conversation):
    r = conversation_timeline
    speech_s = sum(end - start for start, end, _ in conversation.turns)
    total_s = sum(r.speaking_time_s.values())
    assert abs(total_s - speech_s) <= max(1.5, 0.1 * speech_s), (r.speaking_time_s, speech_s)
    assert abs(total_s - sum(s.end_s - s.start_s for s in r.timeline)) < 1e-6
    for gender in CLASSES:  # each gender spoke about half of the time
        truth = sum(end - start for start, end, g in conversation.turns if g == gender)
        assert r.speaking_time_s.get(gender, 0.0) >= 0.6 * truth, (gender, r.speaking_time_s, truth)


def test_one_speaker_has_one_label(pipe, one_speaker):
    spk, wave = one_speaker
    r = pipe(wave, timeline=True)
    assert r.timeline and {s.label for s in r.timeline} == {spk.gender}, [
        (s.start_s, s.end_s, s.label, s.p_male) for s in r.timeline]


# --------------------------------------------------------------------------- StreamingGender

def stream(streamer: StreamingGender, wave: np.ndarray, chunk_s: float = CHUNK_S) -> list[StreamEvent]:
    """Feed ``wave`` in chunks, as fast as possible; every decision."""
    step = int(chunk_s * SR)
    return [e for i in range(0, len(wave), step) for e in streamer.feed(wave[i:i + step])]


@pytest.fixture(scope="module")
def streamer(pipe) -> StreamingGender:
    return StreamingGender(pipe)


def test_stream_follows_each_turn(streamer, conversation):
    streamer.reset()
    events = stream(streamer, conversation.wave)
    changes = [(round(e.t_s, 2), e.previous, e.label) for e in events if e.changed]
    latencies = []
    for i, (start_s, _, gender) in enumerate(conversation.turns):
        until_s = conversation.turns[i + 1][0] if i + 1 < len(conversation.turns) else np.inf
        first = next((e for e in events if e.changed and e.label == gender and start_s <= e.t_s < until_s), None)
        latencies.append(round(first.t_s - start_s, 2) if first else None)
    msg = f"latency per turn (s): {latencies}; turns: {conversation.turns}; changes: {changes}"
    assert all(lat is not None and lat <= TURN_TOLERANCE_S for lat in latencies), msg
    assert events[0].label == UNKNOWN, msg  # less speech than min_speech_s in the first hop
    hop_s = streamer.params.hop_s
    assert [e.t_s for e in events] == pytest.approx(
        np.arange(1, len(events) + 1) * hop_s, abs=0.04), "one decision per hop, stream time in seconds"


def test_one_speaker_makes_at_most_the_first_change(streamer, one_speaker):
    spk, wave = one_speaker
    streamer.reset()
    events = stream(streamer, wave)
    changes = [(round(e.t_s, 2), e.previous, e.label, e.p_male) for e in events if e.changed]
    assert len(changes) <= 1, changes
    assert all(prev == UNKNOWN and label == spk.gender for _, prev, label, _ in changes), changes
    assert events[-1].label == spk.gender


def test_silence_and_low_noise_stay_unknown(streamer):
    rng = np.random.default_rng(0)
    for wave in (np.zeros(4 * SR, np.float32), (0.003 * rng.standard_normal(4 * SR)).astype(np.float32)):
        streamer.reset()
        events = stream(streamer, wave)
        assert len(events) >= 10
        assert {e.label for e in events} == {UNKNOWN} and not any(e.changed for e in events)
        assert all(e.p_male is None for e in events)


def test_unreadable_file_source_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="missing"):
        next(file_chunks(str(tmp_path / "nope.wav"), realtime=False))


def test_reset_starts_the_clock_again(streamer, conversation):
    streamer.reset()
    stream(streamer, conversation.wave[:3 * SR])
    assert streamer.label != UNKNOWN
    streamer.reset()
    assert streamer.label == UNKNOWN
    events = stream(streamer, np.zeros(SR, np.float32))
    assert events[0].t_s == pytest.approx(streamer.params.hop_s, abs=0.04)
    assert events[-1].t_s <= 1.0 and not any(e.changed for e in events)
    one = streamer(np.zeros(int(0.3 * SR), np.float32))  # the callable form: the hop's decision
    assert one is not None and one.t_s == pytest.approx(4 * streamer.params.hop_s, abs=0.04)


# --------------------------------------------------------------------------- the command lines

def cli(module: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` from the repo folder; stdout/stderr as text, never asserts."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_DIR, env=env, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL, capture_output=True,
                          timeout=CLI_TIMEOUT_S)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def int16_bytes(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1.0, 1.0) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory, conversation, sure_speakers) -> dict[str, Path]:
    """A folder of two real clips, a corrupt file and a zero-byte file; a manifest (relative and
    absolute paths) of the conversation and one clip."""
    root = tmp_path_factory.mktemp("cli")
    folder = root / "in"
    folder.mkdir()
    real = [s.paths[0] for s in sure_speakers[:2]]
    for p in real:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8)
    (folder / "zero.flac").write_bytes(b"")
    manifest = root / "conv" / "manifest.csv"
    manifest.parent.mkdir()
    (manifest.parent / "conversation.wav").write_bytes(conversation.path.read_bytes())
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([["path", "speaker", "gender"], ["conversation.wav", "many", "male"],
                     [str(real[0]), sure_speakers[0].name, sure_speakers[0].gender]])
    return {"root": root, "folder": folder, "manifest": manifest, "clip": real[0]}


@pytest.fixture(scope="module")
def cli_runs(run_dir, cli_inputs, conversation) -> dict[str, subprocess.CompletedProcess]:
    """Every command-line case, run as real subprocesses, two at a time."""
    root, run = cli_inputs["root"], f"run={run_dir}"
    wav = conversation.path
    two_turns_s = conversation.turns[1][1]
    pcm_8k = int16_bytes(resample(conversation.wave[:int(two_turns_s * SR)], SR, 8000))

    def hydra_dir(name: str) -> str:
        return f"hydra.run.dir={root / 'hydra' / name}"

    cases = {
        "predict_folder_csv": ("src.predict", [run, f"input={cli_inputs['folder']}", "format=csv",
                                               f"output={root / 'folder.csv'}", "progress=false"], None),
        "predict_manifest_rttm": ("src.predict", [run, f"input={cli_inputs['manifest']}", "format=rttm",
                                                  f"output={root / 'conv.rttm'}", "progress=false"], None),
        "stream_file": ("src.stream", [run, f"source=file:{wav}", "realtime=false"], None),
        "stream_stdin_8k": ("src.stream", [run, "source=stdin", "rate=8000"], pcm_8k),
        "stream_stdin_wav": ("src.stream", [run, "source=stdin"], wav.read_bytes()),
        "stream_rate_100": ("src.stream", [run, "source=stdin", "rate=100"], b"\x00" * 3200),
        "stream_float32_of_int16": ("src.stream", [run, "source=stdin", "dtype=float32"],
                                    int16_bytes(conversation.wave[:SR])),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(cli, module, *args, hydra_dir(k), "num_threads=1", stdin=stdin)
                   for k, (module, args, stdin) in cases.items()}
        return {k: f.result() for k, f in futures.items()}


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{' '.join(proc.args[2:])}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


def test_predict_folder_to_csv(cli_runs, cli_inputs):
    ok(cli_runs["predict_folder_csv"])
    rows = list(csv.DictReader((cli_inputs["root"] / "folder.csv").read_text().splitlines()))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == 4 and set(by_name) == {p.name for p in cli_inputs["folder"].iterdir()}
    assert (by_name["corrupt.wav"]["status"], by_name["corrupt.wav"]["reason"]) == ("error", "unreadable")
    assert (by_name["zero.flac"]["status"], by_name["zero.flac"]["reason"]) == ("error", "empty_file")
    real = [r for name, r in by_name.items() if name not in ("corrupt.wav", "zero.flac")]
    assert all(r["status"] == "ok" and r["label"] in CLASSES and 0 <= float(r["p_male"]) <= 1 for r in real)


def test_predict_manifest_to_rttm(cli_runs, cli_inputs, conversation):
    ok(cli_runs["predict_manifest_rttm"])
    rows = parse_rttm((cli_inputs["root"] / "conv.rttm").read_text())
    assert {r["file"] for r in rows} == {"conversation", file_id(str(cli_inputs["clip"]))}, rows
    conv = [r for r in rows if r["file"] == "conversation"]
    assert len(conv) >= 4, rows
    assert all(0.0 <= r["start_s"] and r["duration_s"] > 0 and r["start_s"] + r["duration_s"]
               <= conversation.duration_s + 1e-3 for r in conv), (conversation.duration_s, conv)
    assert {r["label"] for r in rows} <= {"female", "male", UNKNOWN}
    assert {"female", "male"} <= {r["label"] for r in conv}


def test_stream_file_prints_decisions(cli_runs, conversation):
    *out, end = ok(cli_runs["stream_file"]).stdout.splitlines()
    assert len(out) == pytest.approx(conversation.duration_s / 0.3, abs=2), out[:5]
    changes = [line for line in out if "<- change" in line]
    assert any("-> male)" in line for line in changes) and any("-> female)" in line for line in changes), out
    assert end.startswith("end: ") and "speaking time: female" in end, end  # the whole stream's answer


def test_stream_raw_pcm_on_stdin(cli_runs, conversation):
    """The first two turns (female, male) as 8 kHz int16 on standard input."""
    *out, end = ok(cli_runs["stream_stdin_8k"]).stdout.splitlines()
    assert end.startswith("end: ") and len(out) == pytest.approx(conversation.turns[1][1] / 0.3, abs=2), out[:5]
    changes = [line for line in out if "<- change" in line]
    assert [c.split("(")[-1] for c in changes] == ["unknown -> female)", "female -> male)"], out


@pytest.mark.parametrize("case, message", [
    ("stream_stdin_wav", "not raw PCM"),
    ("stream_rate_100", "declared rate 100 Hz is outside"),
    ("stream_float32_of_int16", "is the stream int16? set dtype=int16"),
])
def test_stream_refuses_bad_input_with_a_clear_message(cli_runs, case, message):
    proc = cli_runs[case]
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
