"""ASGI middleware, one per module (Starlette's layout): each guards or reshapes the requests of the routes it wraps.

They wrap the service's own routes, one by one (`service.routing`), not a whole app: in a host's
app they guard the service's paths and leave the host's alone.
"""

from service.middleware.authentication import AuthenticationMiddleware
from service.middleware.header_limit import HeaderLimitMiddleware
from service.middleware.host_check import HostCheckMiddleware
from service.middleware.http_metrics import HttpMetricsMiddleware
from service.middleware.json_errors import JsonErrorsMiddleware
from service.middleware.request_id import RequestIdMiddleware
from service.middleware.trimmed_headers import TrimmedHeadersMiddleware

__all__ = [
    "AuthenticationMiddleware",
    "HeaderLimitMiddleware",
    "HostCheckMiddleware",
    "HttpMetricsMiddleware",
    "JsonErrorsMiddleware",
    "RequestIdMiddleware",
    "TrimmedHeadersMiddleware",
]
