"""MkDocs hook: links from a page to a repository file that the site carries as a page of its own.

``docs/results.md`` links the model card as ``../models/default/MODEL_CARD.md`` (right on GitHub);
the site includes that card as ``model-card.md``, so the link is pointed there. Any other link out
of ``docs/`` is left alone, and ``mkdocs build --strict`` fails on it.
"""

from __future__ import annotations

import posixpath
import re

# repository path -> the site page that includes it
SITE_PAGES = {"models/default/MODEL_CARD.md": "model-card.md"}

LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")


def rewrite(markdown: str, page_src: str) -> str:
    """``page_src``: the page's path under ``docs/`` (``results.md``); links in it are rewritten
    when they resolve to a key of ``SITE_PAGES``."""
    page_dir = posixpath.dirname(posixpath.join("docs", page_src))
    depth = page_src.count("/")

    def one(match: re.Match) -> str:
        target = match.group("target")
        if "://" in target:
            return match.group(0)
        repo_path = posixpath.normpath(posixpath.join(page_dir, target))
        page = SITE_PAGES.get(repo_path)
        if page is None:
            return match.group(0)
        return f"]({'../' * depth}{page}{match.group('anchor') or ''})"

    return LINK.sub(one, markdown)


def on_page_markdown(markdown, page, config, files):
    """MkDocs' hook: called with every page's Markdown before it is rendered."""
    return rewrite(markdown, page.file.src_uri)
