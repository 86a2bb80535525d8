"""One error format for the whole API: {"detail": sentence, "code": machine code, "fields": {...}}.

Views raise `ApiError` (or any DRF exception); `exception_handler` turns every one of them into
that shape, with `fields` only for validation errors. `error_body` is the same shape for the
few answers made outside DRF (middleware, plain Django views under /api/).
"""
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """An answer for a person and a program: `raise ApiError("quota_exceeded", "...", status=429)`."""

    def __init__(self, code: str, detail: str, *, status: int = 400, headers: dict | None = None):
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.code = code
        self.headers = headers or {}


def error_body(code: str, detail: str, fields: dict | None = None) -> dict:
    body = {"detail": detail, "code": code}
    if fields:
        body["fields"] = fields
    return body


def error_response(code: str, detail: str, http_status: int, **headers) -> JsonResponse:
    """The same shape from code that runs outside DRF (middleware, the ASGI upload guard)."""
    response = JsonResponse(error_body(code, detail), status=http_status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [f"{key}: {message}" for key, value in detail.items() for message in _flatten(value)]
    if isinstance(detail, list):
        return [message for item in detail for message in _flatten(item)]
    return [str(detail)]


def _fields(detail) -> dict:
    """{field: [messages]} from a ValidationError's detail; nested errors keep their dotted path."""
    if not isinstance(detail, dict):
        return {"non_field_errors": _flatten(detail)}
    return {str(key): _flatten(value) for key, value in detail.items()}


def exception_handler(exc, context):
    # Django's own exceptions, as DRF's handler treats them, so that their codes come through.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) if str(exc) else None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) if str(exc) else None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API exception: Django's 500 handling (logged) takes over
    _render_as_json(context.get("request"))
    if isinstance(exc, ApiError):
        response.data = error_body(exc.code, str(exc.detail))
        for name, value in exc.headers.items():
            response[name] = value
    elif isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail)
        first = next(iter(fields.values()), ["Invalid input."])[0]
        response.data = error_body("invalid", f"Check the input: {first}", fields)
    else:
        code = exc.get_codes() if hasattr(exc, "get_codes") else "error"
        detail = exc.detail if hasattr(exc, "detail") else str(exc)
        if not isinstance(code, str):
            code, detail = "error", " ".join(_flatten(detail))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            detail = f"Too many requests: try again in {math.ceil(exc.wait)} seconds."
        response.data = error_body(code, str(detail))
    return response


def _render_as_json(request) -> None:
    """Errors are JSON even from views whose answer is a PNG, a CSV or an ONNX file."""
    if request is not None and getattr(request, "accepted_media_type", "application/json") != "application/json":
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = "application/json"


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request, exception=None):
    """A URL under /api/ that matches no route answers in the API's shape, not with the HTML page."""
    if _is_api(request):
        return error_response("not_found", "No such API route: see /api/docs/ for the routes.", 404)
    from django.views.defaults import page_not_found as html_not_found

    return html_not_found(request, exception)


def bad_request(request, exception=None):
    """Requests Django itself refuses (a malformed multipart body, a bad Host header...)."""
    if _is_api(request):
        return error_response("bad_request", "The request could not be read: check its body and headers.", 400)
    from django.views.defaults import bad_request as html_bad_request

    return html_bad_request(request, exception)


def server_error(request):
    if _is_api(request):
        return error_response("server_error", "Something went wrong on the server; it has been logged.", 500)
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)
