"""The example clips the web page offers to try with one click (``serve.yaml``'s ``examples``).

``GET /v1/examples`` lists them (title, file name, URL); ``GET /v1/examples/{index}`` sends one.
Only the configured files are served, by their index, never a path from the request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse

from src.serving.schemas import ExampleBody

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """A bundled recording: what the page calls it, and its file."""

    title: str
    path: str
    note: str | None = None  # where it comes from, and whether the model answering trained on it


def examples_router(examples: tuple[Example, ...]) -> APIRouter:
    """The two routes; examples whose file is missing are left out (and logged once)."""
    found = []
    for e in examples:
        if Path(e.path).is_file():
            found.append(e)
        else:
            log.warning("example clip not found, not offered: %s", e.path)
    router = APIRouter()

    @router.get("/v1/examples", response_model=list[ExampleBody],
                summary="Example clips to try (the web page's buttons)")
    async def list_examples() -> list[dict]:
        return [{"title": e.title, "name": Path(e.path).name, "url": f"/v1/examples/{i}", "note": e.note}
                for i, e in enumerate(found)]

    @router.get("/v1/examples/{index}", summary="One example clip (audio)", response_class=FileResponse)
    async def get_example(index: int):
        if not 0 <= index < len(found):
            return JSONResponse({"error": "not_found", "detail": f"no example {index}"}, status_code=404)
        return FileResponse(found[index].path, filename=Path(found[index].path).name)

    return router
