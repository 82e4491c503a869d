"""``python -m src.serve [run=<run_dir|latest>] host=127.0.0.1 port=8000``: the HTTP service.

    python -m src.serve                                   # the shipped model, http://127.0.0.1:8000/
    python -m src.serve run=latest:resemblyzer port=9000 max_upload_mb=50 max_duration_s=1800

``POST /v1/classify`` (multipart ``file``), ``WebSocket /v1/stream?rate=&dtype=``,
``GET /healthz``, the OpenAPI docs at ``/docs`` and a web page at ``/``
(see :mod:`src.serving`). The model loads once, before the first request.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

from omegaconf import DictConfig

from src.cli import verb
from src.inference.params import QualityParams, TimelineParams, check_unknown_below
from src.inference.pipeline import GenderPipeline
from src.inference.run_folder import RunFolder
from src.runtime import set_threads
from src.serving import ServeSettings, create_app
from src.serving.connections import BACKLOG, guarded_protocol, max_connections_for, raise_fd_limit, rate_limit_logging
from src.settings import from_cfg

log = logging.getLogger(__name__)


def serve_settings(cfg: DictConfig, run_name: str | None = None, model_card: str | None = None) -> ServeSettings:
    """The service's limits and options from ``conf/serve.yaml`` (its ``stream`` group included)."""
    return from_cfg(ServeSettings, cfg, run_name=run_name, model_card=model_card)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(cfg: DictConfig) -> None:
    """Resolve the run, then serve until stopped (Ctrl-C)."""
    import uvicorn

    set_threads(cfg.num_threads)
    check_unknown_below(cfg.unknown_below)
    from_cfg(TimelineParams, cfg.timeline_params)  # settings out of range fail before the server starts
    from_cfg(QualityParams, cfg.quality)
    folder = RunFolder.resolve(cfg.run, cfg.paths.runs_dir)  # a missing or unfinished run fails before serving
    card = folder.dir / "MODEL_CARD.md"
    settings = serve_settings(cfg, folder.name, str(card) if card.is_file() else None)
    factory = functools.partial(GenderPipeline.from_run, folder, device=cfg.device, unknown_below=cfg.unknown_below,
                                timeline_params=from_cfg(TimelineParams, cfg.timeline_params),
                                quality_params=from_cfg(QualityParams, cfg.quality),
                                max_duration_s=float(cfg.max_duration_s))
    if not is_loopback(str(cfg.host)):
        log.warning("listening on %s: anyone who can reach this address can use the service (no authentication)",
                    cfg.host)
    log.info("model: %s (%s); serving on http://%s:%s/", folder.name, folder.dir, cfg.host, cfg.port)
    rate_limit_logging()  # a flood of one message (e.g. EMFILE on accept) is logged 5 times per 10 s
    max_connections = max_connections_for(raise_fd_limit())
    log.info("at most %d connections open at once; headers within %g s", max_connections, settings.header_timeout_s)
    uvicorn.run(create_app(factory, settings), host=str(cfg.host), port=int(cfg.port), log_config=None,
                log_level=str(cfg.log_level), ws_max_size=settings.max_frame_bytes + 1024,
                timeout_graceful_shutdown=5, backlog=BACKLOG,
                http=guarded_protocol(settings.header_timeout_s, max_connections))


@verb("serve")
def main(cfg: DictConfig) -> None:
    run_serve(cfg)


if __name__ == "__main__":
    main()
