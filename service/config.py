"""Read the service's settings from the environment, with defaults, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _int_env(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from error
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin == "*" or not origin.startswith(("https://", "http://")):
            raise ConfigError(f"CORS_ALLOWED_ORIGINS takes full origins, got {origin!r}")
    return origins


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL must be debug, info, warning, error or critical: {raw!r}")
    return level


@dataclass(frozen=True)
class Config:
    """Settings of one app instance; tests pass overrides to `create_app`."""

    rulesets_dir: Path
    openapi_path: Path
    max_body_bytes: int
    max_batch_body_bytes: int
    max_batch_items: int
    max_bodies_in_flight_bytes: int
    cors_allowed_origins: tuple[str, ...]
    log_level: str

    @classmethod
    def from_env(cls, **overrides: Any) -> Config:
        values: dict[str, Any] = {
            "rulesets_dir": Path(os.environ.get("RULESETS_DIR") or PROJECT_ROOT / "rulesets"),
            "openapi_path": Path(os.environ.get("OPENAPI_PATH") or PROJECT_ROOT / "openapi.yaml"),
            "max_body_bytes": _int_env("MAX_BODY_BYTES", 64 * 1024, minimum=1024),
            "max_batch_body_bytes": _int_env("MAX_BATCH_BODY_BYTES", 8 * 1024 * 1024,
                                             minimum=1024),
            "max_batch_items": _int_env("MAX_BATCH_ITEMS", 1000, minimum=1),
            # What one worker process holds of request bodies at once: with gevent, any
            # number of uploads can be read at the same time, and their sum must stay well
            # inside the pod's memory (three full batch bodies by default).
            "max_bodies_in_flight_bytes": _int_env("MAX_BODY_BYTES_IN_FLIGHT",
                                                   24 * 1024 * 1024, minimum=1024),
            "cors_allowed_origins": _origins(os.environ.get("CORS_ALLOWED_ORIGINS", "")),
            "log_level": _log_level(os.environ.get("LOG_LEVEL", "info")),
        }
        values.update(overrides)
        if values["max_bodies_in_flight_bytes"] < values["max_batch_body_bytes"]:
            raise ConfigError("MAX_BODY_BYTES_IN_FLIGHT must be at least MAX_BATCH_BODY_BYTES: "
                              "otherwise a full batch could never be read")
        return cls(**values)
