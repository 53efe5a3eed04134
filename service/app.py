"""The Flask app: load and check the rulesets, then install the API, the hooks and the pages."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask

from . import cds_hooks
from .api import blueprint
from .assessment import Assessor
from .config import Config, ConfigError
from .errors import register_error_handlers
from .headers import install_compression, install_cors, install_security_headers
from .http import install_body_budget
from .json_provider import OrjsonProvider
from .loader import load_rulesets
from .observability import configure_logging, install_request_observers
from .web import blueprint as web_blueprint


def create_app(**overrides: Any) -> Flask:
    """Create the app: load and check the rulesets (refusing to start on any problem)."""
    config = Config.from_env(**overrides)
    app = Flask(__name__, static_folder=None)  # no static files; no /static route
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        MAX_BATCH_BODY_BYTES=config.max_batch_body_bytes,
        MAX_BATCH_ITEMS=config.max_batch_items,
        OPENAPI_PATH=str(config.openapi_path),
    )
    app.json = OrjsonProvider(app)  # keeps the documented field order in responses
    configure_logging(config.log_level)
    assessor = Assessor(load_rulesets(config.rulesets_dir))
    app.extensions["assessor"] = assessor
    app.extensions["batch_slot"] = threading.BoundedSemaphore(1)
    install_body_budget(app, config.max_bodies_in_flight_bytes)
    install_request_observers(app, assessor.catalog.version)
    install_security_headers(app)
    install_compression(app)
    install_cors(app, config.cors_allowed_origins)
    register_error_handlers(app)
    app.register_blueprint(blueprint)
    app.extensions["cds_hooks"] = hook_settings = cds_hooks.load_settings()  # CDS_HOOKS_*
    if hook_settings.max_body_bytes > config.max_bodies_in_flight_bytes:
        raise ConfigError("MAX_BODY_BYTES_IN_FLIGHT must be at least CDS_HOOKS_MAX_BODY_BYTES: "
                          "otherwise a hook call of the largest allowed size could never be read")
    cds_hooks.terminology()  # the value sets, checked at start-up rather than at first call
    app.register_blueprint(cds_hooks.blueprint)  # /cds-services (CDS Hooks 2.0)
    app.register_blueprint(web_blueprint)  # /intake, /rules, /trace and /static/
    return app
