"""One upload of ``POST /v1/classify``: the multipart body, streamed to a temp file under the size
limit and the timeouts, then decoded into a 16 kHz wave.

:func:`receive_upload` never holds the body in memory and keeps the client's file name only as a
string; :func:`decode_upload` turns :class:`AudioError` into the answer's status (:data:`AUDIO_ERRORS`).
The caps on uploads at once and the body's timeouts are in :mod:`src.serving.limits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from src.data.audio import SAMPLE_RATE_HZ, AudioError, DecodedAudio, decode_audio
from src.serving.errors import ApiError
from src.serving.limits import BodyTimeout, timed_chunks

UPLOAD_FIELD = "file"
MULTIPART_SLACK_BYTES = 64 * 1024  # boundaries and part headers around the file, at most
ACCEPTED_TYPES = ("audio/", "video/", "application/octet-stream", "application/ogg")  # video/: mp4, webm


@dataclass
class Upload:
    """What the multipart body held (the file's bytes are in the service's temp file)."""

    filename: str | None = None
    content_type: str | None = None
    size: int = 0
    found: bool = False


async def receive_upload(request: Request, dest: Path, max_bytes: int, idle_timeout_s: float = float("inf"),
                         total_timeout_s: float = float("inf"), min_rate_bytes_s: float = 0.0,
                         grace_s: float = 0.0) -> Upload:
    """Stream the ``file`` part of a multipart body into ``dest``, enforcing ``max_bytes`` and
    the timeouts (no chunk for ``idle_timeout_s``, the body not done in ``total_timeout_s``, or
    slower than ``min_rate_bytes_s`` on average once ``grace_s`` have passed).

    The body is never held in memory; the client's file name is kept only as a string.

    Raises:
        ApiError: 400 (not multipart, malformed), 408 (too slow), 413 (too large), 415 (not audio),
            422 (no file field).
    """
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(400, "bad_multipart", "send the audio as multipart/form-data with a `file` field "
                                              "(e.g. curl -F file=@call.wav)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK_BYTES:
        raise ApiError(413, "too_large", f"the upload is {int(declared) / 2**20:.1f} MiB; the limit is "
                                         f"{max_bytes / 2**20:g} MiB (max_upload_mb)")
    up = Upload()
    state: dict[str, Any] = {"headers": [], "name": b"", "value": b"", "in_file": False, "ended": False}

    def on_part_begin() -> None:
        state["headers"], state["in_file"] = [], False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"].append((state["name"].lower(), state["value"]))
        state["name"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        headers = dict(state["headers"])
        _, opts = parse_options_header(headers.get(b"content-disposition", b""))
        if opts.get(b"name") != UPLOAD_FIELD.encode() or up.found:
            return  # other fields are ignored; only the first `file` part is read
        up.found, state["in_file"] = True, True
        raw_name = opts.get(b"filename")
        up.filename = raw_name.decode("utf-8", "replace")[:200] if raw_name is not None else None
        up.content_type = headers.get(b"content-type", b"").decode("latin-1").strip().lower() or None
        if up.content_type and not up.content_type.startswith(ACCEPTED_TYPES):
            raise ApiError(415, "unsupported_media_type", f"the file part is {up.content_type!r}; send audio "
                                                          "(audio/*, or application/octet-stream)")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            up.size += end - start
            if up.size > max_bytes:
                raise ApiError(413, "too_large", f"the file is over the limit of {max_bytes / 2**20:g} MiB "
                                                 "(max_upload_mb)")
            out.write(data[start:end])

    def on_part_end() -> None:
        state["in_file"] = False

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_end": on_end})
    received = 0
    with open(dest, "xb") as out:
        try:
            chunks = timed_chunks(request.stream(), idle_timeout_s, total_timeout_s, min_rate_bytes_s, grace_s)
            async for chunk in chunks:
                received += len(chunk)
                if received > max_bytes + MULTIPART_SLACK_BYTES:
                    raise ApiError(413, "too_large", f"the upload is over the limit of {max_bytes / 2**20:g} MiB "
                                                     "(max_upload_mb)")
                parser.write(chunk)
            parser.finalize()
        except FormParserError as e:
            raise ApiError(400, "bad_multipart", f"the multipart body is malformed: {e}") from None
        except BodyTimeout as e:
            raise ApiError(408, "timeout", f"the upload was too slow: {e}") from None
    if not up.found:
        raise ApiError(422, "missing_file", f"no `{UPLOAD_FIELD}` field in the form: send the audio as "
                                            f"`{UPLOAD_FIELD}` (e.g. curl -F file=@call.wav)")
    if not state["ended"]:
        raise ApiError(400, "bad_multipart", "the multipart body ended before its closing boundary")
    return up


AUDIO_ERRORS = {  # AudioError.reason -> (status, error)
    "empty_file": (400, "empty_file"), "empty_audio": (422, "empty_audio"), "too_long": (413, "too_long"),
    "non_finite": (422, "non_finite"), "unreadable": (422, "unreadable_audio"), "bad_rate": (422, "unsupported_rate"),
}  # any other reason (missing, not_a_file ...) is about the service's own temp file: a 500


def decode_upload(path: Path, max_duration_s: float, filename: str | None, native=None) -> DecodedAudio:
    """The uploaded file at ``path`` as a 16 kHz mono wave (at most ``max_duration_s``); ``native``
    sees it at its own rate first (``decode_audio``'s: the quality check).

    Raises:
        ApiError: the status of :data:`AUDIO_ERRORS` (messages name ``filename``, never the temp
            file); any other reason is about the service's own temp file: 500.
    """
    try:
        return decode_audio(path, SAMPLE_RATE_HZ, max_duration_s, native=native)
    except AudioError as e:
        status, error = AUDIO_ERRORS.get(e.reason, (500, "internal_error"))
        raise ApiError(status, error, e.message.replace(str(path), filename or "the upload")) from None
