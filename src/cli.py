"""What every verb does around its work: one clear line for an error, exit codes, a short ``--help``.

    @verb("predict")
    def main(cfg: DictConfig) -> None:
        run_predict(cfg)

wraps ``hydra.main`` so that a usage error (a missing or misspelt option, a value out of its
choices, a path that does not exist, a run that is not finished) prints one line on stderr and
exits 2, and any other failure prints one line and exits 1. ``HYDRA_FULL_ERROR=1`` or the option
``debug=true`` shows the traceback instead. ``--help`` lists the verb's own options, one line
each, from the comments of ``conf/<verb>.yaml``.

The command line forgives: a verb with a ``positional`` option takes it bare or as ``-i``/``--input``
(``python -m src.predict call.wav``, any path, quoted for Hydra here); a misspelt option gets a "did
you mean"; and a command the error message suggests carries the user's own overrides that it takes
(``train data=dev`` before extraction suggests ``python -m src.extract encoder=... data=dev``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable
from importlib.resources import files

import hydra

from src.config_store import GROUP_SCHEMAS  # importing it registers the group schemas, before Hydra composes

log = logging.getLogger(__name__)

USAGE_EXIT = 2
FAILURE_EXIT = 1
DEBUG_ARGS = ("debug=true", "+debug=true", "debug=True", "+debug=True")
_SET_BY_US = "GENDER_CLI_SET_HYDRA_FULL_ERROR"  # HYDRA_FULL_ERROR=1 set by this module, not by the user


class UsageError(ValueError):
    """A command line that cannot work (the message says what to change); exit status 2."""


def _usage_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the command line is wrong, not that the work failed."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

    from src.inference.params import SettingError
    from src.inference.sources import SourceError
    from src.models.run_folder import RunError

    return (UsageError, ConfigCompositionException, MissingConfigException, OverrideParseException,
            MissingMandatoryValue, ConfigKeyError, ValidationError, RunError, SourceError, SettingError,
            FileNotFoundError, NotADirectoryError, IsADirectoryError)


def one_line(err: BaseException) -> str:
    """The error as one line: Hydra's and OmegaConf's messages lose their ``full_key``/``object_type`` notes."""
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(err, MissingMandatoryValue) and getattr(err, "full_key", None):
        return f"missing {err.full_key}=: this option has no default (see --help)"
    text = str(err).strip() or type(err).__name__
    if err.__cause__ is not None and "override" in text.lower():  # Hydra: "Could not override 'x'." + the why
        cause = str(err.__cause__).split("\n")[0]
        text = f"{text.splitlines()[0]} {cause}"
    text = text.split("Config search path")[0]  # Hydra's list of where it looked: not for the user
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not re.match(r"(full_key|object_type|reference_type|Set the environment)", ln)]
    return " ".join(lines)[:600]


def verb_help(config_name: str, doc: str | None) -> str:
    """The verb's first docstring line and its options: each top-level ``key: value  # comment`` of its yaml."""
    text = files("conf").joinpath(f"{config_name}.yaml").read_text(encoding="utf-8")
    first = (doc or "").strip().splitlines()[0].replace("``", "") if doc else f"python -m src.{config_name}"
    lines = [first, "", "options:"]
    groups = []
    for line in text.splitlines():
        if line.startswith("hydra:"):
            break
        m = re.match(r"\s+- (\w+): (\w+)\s*(#.*)?$", line)
        if m:
            groups.append(f"  {m.group(1) + '=' + m.group(2):<24} {(m.group(3) or '').lstrip('# ')}".rstrip())
            continue
        m = re.match(r"^(\w[\w.]*):\s*(.*?)\s*(#\s*(.*))?$", line)
        if m and m.group(1) != "defaults":
            lines.append(f"  {m.group(1) + '=' + m.group(2):<24} {m.group(4) or ''}".rstrip())
    if groups:
        lines += ["", "setting groups (override any field, e.g. paths.runs_dir=...):", *groups]
    lines += ["", "key=value sets an option; debug=true (or HYDRA_FULL_ERROR=1) shows tracebacks;",
              "--cfg job prints the whole composed config; --hydra-help lists Hydra's own flags."]
    return "\n".join(lines)


INPUT_FLAGS = ("-i", "--input")
HYDRA_VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun")  # Hydra's flags that take the next argument


def hydra_value(text: str) -> str:
    """``text`` as a Hydra override value, quoted when Hydra's grammar would read it otherwise."""
    if re.fullmatch(r"[\w./:@+-]+", text) and not text[0].isdigit():
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def with_positional(args: list[str], key: str, prefix: str = "") -> list[str]:
    """Bare arguments and ``-i X`` / ``--input X`` / ``--input=X`` as ``key=<prefix>X`` overrides."""
    out, rest = [], iter(args)

    def value(text: str) -> str:
        return hydra_value(text if text.startswith(prefix) or re.fullmatch(r"\w+", text) else prefix + text)

    for a in rest:
        if a in HYDRA_VALUE_FLAGS:
            out += [a, next(rest, "")]
        elif a in INPUT_FLAGS:
            nxt = next(rest, None)
            if nxt is None:
                raise UsageError(f"{a} needs a value: {a} <file or folder>")
            out.append(f"{key}={value(nxt)}")
        elif a.startswith("--input="):
            out.append(f"{key}={value(a.split('=', 1)[1])}")
        elif not a.startswith("-") and "=" not in a:
            out.append(f"{key}={value(a)}")
        else:
            out.append(a)
    return out


def config_keys(config_name: str) -> list[str]:
    """Every key of the verb's composed config, dotted (``format``, ``timeline_params.hop_s`` ...)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose(config_name)
    out = []

    def walk(node, prefix: str) -> None:
        for k in node:
            v = node._get_node(k)
            if OmegaConf.is_dict(v):
                walk(v, f"{prefix}{k}.")
            out.append(f"{prefix}{k}")

    walk(cfg, "")
    return out


def did_you_mean(config_name: str, text: str) -> str:
    """`` (did you mean format?)`` for an unknown key in ``text``, or ``""``."""
    import difflib

    m = re.search(r"Key '([\w.]+)' is not in struct|Could not override '([\w.]+)'", text)
    if not m:
        return ""
    key = m.group(1) or m.group(2)
    try:
        keys = config_keys(config_name)
    except Exception:  # noqa: BLE001 (a suggestion is a courtesy, never a second error)
        return ""
    close = difflib.get_close_matches(key, keys, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(c + '=' for c in close)}?)" if close else ""


def carry_overrides(text: str, args: list[str]) -> str:
    """A suggested ```python -m src.<verb> ...``` in ``text`` with the user's own overrides added that
    that verb takes (its config has the key) and the suggestion does not already set."""

    def extend(m: re.Match) -> str:
        target, cmd = m.group(1), m.group(0)[:-1]
        try:
            keys = set(config_keys(target))
        except Exception:  # noqa: BLE001
            return m.group(0)
        have = {w.split("=", 1)[0].lstrip("+~") for w in cmd.split() if "=" in w}
        extra = [a for a in args if "=" in a and (k := a.split("=", 1)[0].lstrip("+~")) in keys and k not in have
                 and not k.startswith("hydra")]
        return cmd + "".join(f" {a}" for a in extra) + "`"

    return re.sub(r"`python -m src\.(\w+)[^`]*`", extend, text)


def check_options(config_name: str, cfg) -> None:
    """What the YAML's types cannot say, checked before any work: an option whose default is a bool
    takes only true/false, ``unknown_below`` is null or within [0.5, 1], and the ``timeline_params``
    and ``stream`` groups pass their dataclasses' own range checks.

    Raises:
        UsageError: the first option out of range, with what it takes.
    """
    from omegaconf import OmegaConf

    text = files("conf").joinpath(f"{config_name}.yaml").read_text(encoding="utf-8")
    defaults = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    for key, default in defaults.items():
        if isinstance(default, bool) and key in cfg and not isinstance(cfg.get(key), bool):
            raise UsageError(f"{key}={cfg.get(key)}: give true or false")
    from src.inference.params import check_unknown_below
    from src.settings import from_cfg

    ub = cfg.get("unknown_below")
    if ub is not None and (isinstance(ub, bool) or not isinstance(ub, (int, float))):
        raise UsageError(f"unknown_below={ub}: give a probability in [0.5, 1] (or null: the model's own)")
    try:
        check_unknown_below(ub)  # the range, defined once
    except ValueError as e:
        raise UsageError(str(e)) from None

    for (group, _), cls in GROUP_SCHEMAS.items():  # every group's ranges, before any model loads
        if cfg.get(group) is not None:
            try:
                from_cfg(cls, cfg[group])
            except (TypeError, ValueError) as e:
                raise UsageError(str(e)) from None


def verb(config_name: str, positional: str | None = None, prefix: str = "") -> Callable[[Callable], Callable[[], None]]:
    """Decorator for a verb's ``main(cfg)``: Hydra, then errors as one line and exit codes 2 (usage) / 1.
    ``positional``: the option a bare argument or ``-i`` sets (``prefix`` before its value)."""

    def decorate(task: Callable) -> Callable[[], None]:
        failed: list[BaseException] = []

        @functools.wraps(task)
        def guarded(cfg):  # the task's own error is raised after Hydra returns (Hydra would print a line of its own)
            try:
                check_options(config_name, cfg)
                return task(cfg)
            except (Exception, KeyboardInterrupt) as err:
                failed.append(err)

        hydra_main = hydra.main(version_base="1.3", config_path="pkg://conf", config_name=config_name)(guarded)

        @functools.wraps(task)
        def main() -> None:
            if any(a in ("--help", "-h") for a in sys.argv[1:]):
                print(verb_help(config_name, sys.modules[task.__module__].__doc__))
                return
            user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1" and not os.environ.get(_SET_BY_US)
            debug = any(a in DEBUG_ARGS for a in sys.argv[1:]) or user_full_error
            sys.argv = [a for a in sys.argv if a not in DEBUG_ARGS]
            if positional:
                try:
                    sys.argv = sys.argv[:1] + with_positional(sys.argv[1:], positional, prefix)
                except UsageError as err:
                    print(f"{config_name}: error (usage): {err}", file=sys.stderr)
                    sys.exit(USAGE_EXIT)
            if not user_full_error:  # Hydra re-raises and the error is reported here; child processes
                os.environ["HYDRA_FULL_ERROR"] = os.environ[_SET_BY_US] = "1"  # know it was not the user's
            try:
                hydra_main()
                if failed:
                    raise failed[0]
            except KeyboardInterrupt:
                print("stopped", file=sys.stderr)
                sys.exit(130)
            except Exception as err:  # noqa: BLE001 (every failure becomes one line and an exit code)
                code = USAGE_EXIT if isinstance(err, _usage_types()) else FAILURE_EXIT
                if debug:
                    traceback.print_exc()
                    sys.exit(code)
                kind = "usage" if code == USAGE_EXIT else type(err).__name__
                text = one_line(err)
                text = carry_overrides(text + did_you_mean(config_name, text), sys.argv[1:])
                print(f"{config_name}: error ({kind}): {text}  [debug=true for the traceback]", file=sys.stderr)
                sys.exit(code)

        return main

    return decorate
