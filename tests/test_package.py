"""The toolkit as a package: console scripts for every verb, and a wheel that carries the configs
and the shipped model, installed into a fresh virtual environment and used from a folder outside
the checkout, where it classifies real speech with the model it carries."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

import src
from src.__main__ import VERBS
from src.__main__ import main as gender_voice
from src.inference.run_folder import RunFolder, models_dir

REPO_DIR = Path(__file__).resolve().parents[1]
SAMPLE_AUDIO = REPO_DIR / "data" / "sample" / "audio"
FEMALE = SAMPLE_AUDIO / "vctk-p225" / "p225_020.flac"  # sample manifest: female
MALE = SAMPLE_AUDIO / "vctk-p226" / "p226_011.flac"  # male
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "conf", "models")
TIMEOUT_S = 300


def verbs_in_source() -> set[str]:
    """The ``src/<verb>.py`` modules whose ``main`` is decorated with ``@verb(...)``."""
    out = set()
    for path in (REPO_DIR / "src").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main" and any(
                    isinstance(d, ast.Call) and getattr(d.func, "id", None) == "verb" for d in node.decorator_list):
                out.add(path.stem)
    return out


def expected_scripts() -> dict[str, str]:
    return {"gender-voice": "src.__main__:main", **{f"gender-voice-{v}": f"src.{v}:main" for v in VERBS}}


def test_every_verb_has_a_console_script():
    assert set(VERBS) == verbs_in_source()
    scripts = tomllib.loads((REPO_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == expected_scripts()


def test_gender_voice_lists_the_verbs_and_hands_the_rest_to_the_verb(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gender-voice", "--help"])
    gender_voice()
    out = capsys.readouterr().out
    assert all(f"\n  {v} " in out for v in VERBS), out

    monkeypatch.setattr(sys, "argv", ["gender-voice", "predict", "--help"])
    gender_voice()  # the verb's own --help: its options, from conf/predict.yaml
    out = capsys.readouterr().out
    assert "options:" in out and "input=???" in out and "format=" in out, out

    monkeypatch.setattr(sys, "argv", ["gender-voice", "predikt", "x.wav"])
    with pytest.raises(SystemExit) as exc:
        gender_voice()
    assert exc.value.code == 2
    assert "did you mean predict?" in capsys.readouterr().err


def test_public_objects_from_the_package_root():
    from src import CLASSES, GenderPipeline, GenderResult, StreamEvent, StreamingGender
    from src.inference.pipeline import GenderPipeline as Defined

    assert GenderPipeline is Defined and CLASSES == GenderPipeline.classes()
    assert {GenderResult.__name__, StreamEvent.__name__, StreamingGender.__name__} <= set(dir(src))
    with pytest.raises(AttributeError):
        src.NoSuchThing  # noqa: B018


def test_a_checkout_uses_its_own_models_folder():
    assert src.checkout_dir() == REPO_DIR
    assert models_dir() == REPO_DIR / "models"
    assert RunFolder.shipped().dir == REPO_DIR / "models" / "default"


def build_wheel(out_dir: Path) -> Path:
    """``pip wheel`` of a copy of the build inputs (so no ``build/`` of this checkout, stale or
    fresh, goes into it), with the running environment's setuptools and no index."""
    tree = out_dir / "tree"
    tree.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]", ".*", "shipped_models")
    for name in BUILD_INPUTS:
        src_path = REPO_DIR / name
        if src_path.is_dir():
            shutil.copytree(src_path, tree / name, ignore=ignore)
        else:
            shutil.copy2(src_path, tree / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out_dir / "dist"), str(tree)],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = list((out_dir / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        assert len(dist_info) == 1, dist_info
        (dist_info,) = dist_info
        assert {n.split("/")[0] for n in names} == {"src", "conf", dist_info}  # no tests/, bench/, scripts/ ...
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

        entry = z.read(f"{dist_info}/entry_points.txt").decode()
        section = entry.split("[console_scripts]")[1].split("\n[")[0]
        scripts = dict(line.replace(" ", "").split("=", 1) for line in section.strip().splitlines())
        assert scripts == expected_scripts()

        for path in (REPO_DIR / "src").rglob("*.py"):
            assert path.relative_to(REPO_DIR).as_posix() in names, path
        for path in [*(REPO_DIR / "conf").rglob("*.yaml"), REPO_DIR / "conf" / "__init__.py",
                     *(REPO_DIR / "src" / "serving" / "static").iterdir()]:
            assert path.relative_to(REPO_DIR).as_posix() in names, path

        shipped = [p for p in (REPO_DIR / "models" / "default").rglob("*") if p.is_file()]
        assert {"best.pt", "config.yaml", "metrics.json", "MODEL_CARD.md"} <= {p.name for p in shipped}
        for path in shipped:  # whatever the folder holds, byte for byte
            member = f"src/shipped_models/{path.relative_to(REPO_DIR / 'models').as_posix()}"
            assert member in names, member
            assert hashlib.sha256(z.read(member)).digest() == hashlib.sha256(path.read_bytes()).digest(), member


def fresh_venv(path: Path) -> Path:
    """A virtual environment that sees the running one's packages (torch etc.) through a ``.pth``
    line but not its editable install of this checkout (``.pth`` files in an added folder are not run)."""
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(path)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "parent_env.pth").write_text("".join(f"{p}\n" for p in parents))
    return python


@pytest.mark.slow
def test_the_wheel_installs_and_answers_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path / "build")
    check_wheel_contents(wheel)

    python = fresh_venv(tmp_path / "venv")  # no pip of its own: this one, seen through parent_env.pth
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bin_dir = python.parent
    assert all((bin_dir / s).is_file() for s in expected_scripts())

    work = tmp_path / "elsewhere"  # a user's folder: no checkout, no src/ or conf/ to import by accident
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("GENDER_HOME", "PYTHONPATH", "HYDRA_FULL_ERROR")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)

    helped = run("gender-voice-predict", "--help")
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "options:" in helped.stdout and "input=???" in helped.stdout and "format=" in helped.stdout

    installed = str(tmp_path / "venv")
    code = (  # the Python API as a user of the installed package writes it
        "import json, src\n"
        "from src import GenderPipeline\n"
        "from src.inference.run_folder import RunFolder\n"
        f"r = GenderPipeline.from_pretrained()({str(MALE)!r})\n"
        "print(json.dumps({'src': src.__file__, 'checkout': str(src.checkout_dir()),"
        " 'model_dir': str(RunFolder.shipped().dir), 'label': r.label, 'status': r.status, 'p_male': r.p_male,"
        " 'classes': list(GenderPipeline.classes())}))\n")
    api = run(str(python), "-c", code)
    assert api.returncode == 0, api.stderr[-3000:]
    answer = json.loads(api.stdout.strip().splitlines()[-1])
    assert answer["src"].startswith(installed) and answer["checkout"] == "None", answer
    assert answer["model_dir"].startswith(installed) and answer["model_dir"].endswith("shipped_models/default"), answer
    assert answer["label"] in answer["classes"] and answer["status"] == "ok", answer
    assert answer["label"] == "male" and answer["p_male"] > 0.5, answer  # VCTK p226: a man

    predicted = run("gender-voice", "predict", str(FEMALE), "format=jsonl", "progress=false")  # overrides as with -m
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    row = json.loads(predicted.stdout.strip().splitlines()[-1])
    assert row["label"] == "female" and row["status"] == "ok", row  # VCTK p225: a woman
    assert f"{installed}" in predicted.stderr and "shipped_models/default" in predicted.stderr  # the model it names
    assert not (REPO_DIR / "src" / "shipped_models").exists()  # the build left nothing in the checkout
