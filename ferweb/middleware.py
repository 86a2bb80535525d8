from django.conf import settings
from django.http import JsonResponse


class UploadLimitMiddleware:
    """Refuse oversized requests with 413 before Django reads the body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.FERWEB_MAX_UPLOAD_BYTES:
            limit_mb = settings.FERWEB_MAX_UPLOAD_BYTES // (1024 * 1024)
            return JsonResponse(
                {"detail": f"Upload too large: the limit is {limit_mb} MB."}, status=413
            )
        return self.get_response(request)
