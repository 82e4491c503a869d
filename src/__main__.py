"""``gender-voice <verb> [options]`` (or ``python -m src <verb> ...``): any verb, by its name.

    gender-voice predict call.wav format=text      # = python -m src.predict call.wav format=text
    gender-voice serve port=8000                   # = gender-voice-serve port=8000

The rest of the command line goes to the verb unchanged, so options, overrides and ``--help`` are
the verb's own.
"""

from __future__ import annotations

import importlib
import re
import sys

# pyproject.toml's gender-voice-<verb>; tests/test_package.py checks the two agree
VERBS = ("predict", "stream", "serve", "extract", "train", "evaluate", "analyze", "compare", "study",
         "prepare", "augment", "stress", "audit", "report")


def usage() -> str:
    """The verbs, each with the first line of its docstring."""
    import ast
    from importlib.util import find_spec
    from pathlib import Path

    lines = ["usage: gender-voice <verb> [options]   (gender-voice <verb> --help: the verb's options)", "", "verbs:"]
    for name in VERBS:
        origin = find_spec(f"src.{name}").origin
        doc = ast.get_docstring(ast.parse(Path(origin).read_text(encoding="utf-8"))) or ""
        first = " ".join(doc.strip().split("\n\n")[0].split())  # the first paragraph, on one line
        what = re.sub(r"^``[^`]*``:\s*", "", first).replace("``", "")
        what = re.split(r"\. |; | \(|: |, with ", what)[0].rstrip(".")  # its first clause
        lines.append(f"  {name:<9} {what}".rstrip())
    return "\n".join(lines)


def main() -> None:
    """Run the verb named by the first argument with the rest of the command line."""
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return
    name = args[0]
    if name not in VERBS:
        import difflib

        close = difflib.get_close_matches(name, VERBS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        print(f"gender-voice: error (usage): no verb {name!r}{hint}; the verbs: {', '.join(VERBS)}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"{sys.argv[0]} {name}", *args[1:]]
    importlib.import_module(f"src.{name}").main()


if __name__ == "__main__":
    main()
