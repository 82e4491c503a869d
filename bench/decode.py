"""The decode matrix: container x codec -> the shipped model's answer, for a woman and a man.

    python bench/decode.py

Both CMU ARCTIC speakers of data/sample (axb, a woman; aew, a man: training data of the shipped
model, so this measures decoding, not accuracy), each clip pair joined, written by PyAV's own
encoders (as phones and browsers write them) and by libsndfile, then classified from the file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_decode import CONTAINERS, encode  # noqa: E402

from src.data.audio import SAMPLE_RATE_HZ, load_audio  # noqa: E402
from src.inference.pipeline import GenderPipeline  # noqa: E402

LIBSNDFILE = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"),
              "ogg": ("OGG", "VORBIS")}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    pipe = GenderPipeline.from_pretrained()
    voices = {g: np.concatenate([load_audio(p) for p in sorted((ROOT / "data/sample/audio" / s).glob("*.flac"))])
              for g, s in (("female", "arctic-axb"), ("male", "arctic-aew"))}
    print("| file | written by | woman: answer | man: answer |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [(f".{k} ({fmt}/{sub})", "libsndfile", lambda w, p, fmt=fmt, sub=sub: sf.write(
            p, w, SAMPLE_RATE_HZ, format=fmt, subtype=sub), k) for k, (fmt, sub) in LIBSNDFILE.items()]
        rows += [(f".{spec[0]} ({spec[2]}, {spec[3] / 1000:g} kHz, {spec[4]} ch)", "PyAV (FFmpeg)",
                  lambda w, p, spec=spec: encode(w, Path(p), *spec[1:]), spec[0]) for spec in CONTAINERS.values()]
        for name, writer, write, suffix in rows:
            cells = []
            for g, w in voices.items():
                path = Path(tmp) / f"{g}.{suffix}"
                write(w, str(path))
                r = pipe(path)
                cells.append(f"{r.label} (p_male {r.p_male:.2f})" if r.p_male is not None else f"{r.status} {r.reason}")
            print(f"| {name} | {writer} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
