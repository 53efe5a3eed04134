"""Flask's JSON output through orjson.

An assessment answer is ~20 KiB of JSON; the standard library's encoder took about a tenth of
a request's CPU time serialising it, orjson about a tenth of that (benchmarks/README.md).
Parsing stays with the standard library: the request reader needs its duplicate-key and
constant hooks, and arbitrarily large integers must stay a 422, not an orjson error.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider


class OrjsonProvider(DefaultJSONProvider):
    """Encode with orjson, keeping insertion order (the documented field order)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return self._encode(obj).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = self._encode(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(body, mimetype=self.mimetype)

    def _encode(self, obj: Any) -> bytes:
        # Types orjson does not know (Decimal, objects with __html__) go through Flask's
        # default conversion, as they would with the standard encoder.
        return orjson.dumps(obj, default=self.default)
