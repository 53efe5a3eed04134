"""Decision support for low back and hip pain: a stateless REST service over durable-rules."""

from __future__ import annotations

from typing import Any

from flask import Flask

from .api import blueprint
from .assessment import Assessor
from .config import Config
from .errors import register_error_handlers
from .loader import load_rulesets


def create_app(**overrides: Any) -> Flask:
    """Create the app: load and check the rulesets (refusing to start on any problem)."""
    config = Config.from_env(**overrides)
    app = Flask(__name__, static_folder=None)  # no static files; no /static route
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        OPENAPI_PATH=str(config.openapi_path),
    )
    app.json.sort_keys = False  # keep the documented field order in responses
    app.extensions["assessor"] = Assessor(load_rulesets(config.rulesets_dir))
    register_error_handlers(app)
    app.register_blueprint(blueprint)
    return app
