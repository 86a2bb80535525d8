"""Requests the API cannot read, answered in the API's one error shape with a precise code.

DRF turns a multipart body it cannot parse into `parse_error`; what it leaves to Django (the
limits Django's multipart parser enforces, a parser error raised outside a DRF view) would
reach the generic 400 handler. Here each gets its own code and a sentence that names the
limit. The last step is a safety net: any other 4xx/5xx under /api/ that is not JSON
(an answer made by a middleware or a plain Django view) is rewritten into the same shape.

Placed first in MIDDLEWARE, so that it sees the answers of every other middleware.
"""
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http.multipartparser import MultiPartParserError
from django.utils.deprecation import MiddlewareMixin

from ferweb.api_errors import error_response

GENERIC_CODES = {
    400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
    405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 429: "throttled",
}


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _unreadable_request(exception):
    """(code, sentence, status) for the ways a request body cannot be read; None for anything else."""
    if isinstance(exception, MultiPartParserError):
        detail = (f"The multipart body could not be read ({exception}). Send it as multipart/form-data "
                  "with a boundary, as browsers and curl -F do.")
        return "malformed_request", detail, 400
    if isinstance(exception, TooManyFilesSent):
        detail = (f"Too many files in one request: the limit is {settings.DATA_UPLOAD_MAX_NUMBER_FILES}. "
                  "Send them in several requests, or as one zip.")
        return "too_many_files", detail, 400
    if isinstance(exception, TooManyFieldsSent):
        detail = f"Too many form fields in one request: the limit is {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}."
        return "too_many_fields", detail, 400
    if isinstance(exception, RequestDataTooBig):
        limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        return "too_large", f"The form fields besides the files are over {limit_mb:g} MB.", 413
    return None


def _is_json(response) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


class ApiErrorMiddleware(MiddlewareMixin):
    def process_exception(self, request, exception):
        """Exceptions from reading the body inside a view (DRF re-raises what it does not know)."""
        answer = _unreadable_request(exception) if _is_api(request) else None
        return error_response(*answer) if answer else None

    def process_response(self, request, response):
        if not _is_api(request) or response.status_code < 400 or _is_json(response):
            return response
        status = response.status_code
        code = GENERIC_CODES.get(status, "server_error" if status >= 500 else "error")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        rewritten = error_response(code, f"{phrase}.", status)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                rewritten[header] = response[header]
        return rewritten
