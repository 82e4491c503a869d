"""What every verb does around its work: one clear line for an error, exit codes, a short ``--help``.

    @verb("predict")
    def main(cfg: DictConfig) -> None:
        run_predict(cfg)

wraps ``hydra.main`` so that a usage error (a missing or misspelt option, a value out of its
choices, a path that does not exist, a run that is not finished) prints one line on stderr and
exits 2, and any other failure prints one line and exits 1. ``HYDRA_FULL_ERROR=1`` or the option
``debug=true`` shows the traceback instead. ``--help`` lists the verb's own options, one line
each, from the comments of ``conf/<verb>.yaml``.
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


def verb(config_name: str) -> Callable[[Callable], Callable[[], None]]:
    """Decorator for a verb's ``main(cfg)``: Hydra, then errors as one line and exit codes 2 (usage) / 1."""

    def decorate(task: Callable) -> Callable[[], None]:
        failed: list[BaseException] = []

        @functools.wraps(task)
        def guarded(cfg):  # the task's own error is raised after Hydra returns (Hydra would print a line of its own)
            try:
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
                print(f"{config_name}: error ({kind}): "
                      f"{one_line(err)}  [debug=true for the traceback]", file=sys.stderr)
                sys.exit(code)

        return main

    return decorate
