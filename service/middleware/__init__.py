"""ASGI middleware, one per module (Starlette's layout): each guards or reshapes every request it sees.

`exempt` is, in each guard that takes it, the paths it leaves alone.
"""

from service.middleware.body_limit import BodyLimitMiddleware
from service.middleware.header_limit import HeaderLimitMiddleware
from service.middleware.host_check import HostCheckMiddleware
from service.middleware.http_metrics import HttpMetricsMiddleware
from service.middleware.json_errors import JsonErrorsMiddleware
from service.middleware.request_id import RequestIdMiddleware
from service.middleware.trimmed_headers import TrimmedHeadersMiddleware

__all__ = [
    "BodyLimitMiddleware",
    "HeaderLimitMiddleware",
    "HostCheckMiddleware",
    "HttpMetricsMiddleware",
    "JsonErrorsMiddleware",
    "RequestIdMiddleware",
    "TrimmedHeadersMiddleware",
]
