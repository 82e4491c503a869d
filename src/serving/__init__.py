"""The HTTP service: ``create_app(pipeline_or_factory, ServeSettings()) -> FastAPI``.

    from src.serving import ServeSettings, create_app
    app = create_app(lambda: GenderPipeline.from_run(run_dir), ServeSettings(max_upload_mb=20))
    uvicorn.run(app, host="127.0.0.1", port=8000)

``python -m src.serve`` does exactly this from ``conf/serve.yaml``.
"""

from src.serving.app import create_app
from src.serving.service import ServeSettings

__all__ = ["ServeSettings", "create_app"]
