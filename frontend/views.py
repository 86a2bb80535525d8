"""plotly.js, served as one of the app's own files from the bundle that the `plotly` package ships.

No CDN (pages work offline) and no copy of the bundle in the repository: the installed package is
the one source, and its version in the URL lets browsers cache the file for a year.
"""
import gzip
import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path

from django.http import Http404, HttpResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe

YEAR = 365 * 24 * 3600  # seconds


@lru_cache(maxsize=1)
def plotly_version() -> str:
    return importlib.metadata.version("plotly")


def plotly_bundle() -> Path:
    """plotly/package_data/plotly.min.js of the installed package, found without importing it."""
    spec = importlib.util.find_spec("plotly")
    return Path(spec.submodule_search_locations[0]) / "package_data" / "plotly.min.js"


@lru_cache(maxsize=2)
def _bundle_bytes(compressed: bool) -> bytes:
    raw = plotly_bundle().read_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if compressed else raw  # 4.6 MB -> about 1.4 MB


@require_safe
def plotly_js(request):
    """The bundle, gzipped for browsers that accept it; cached for a year when asked for by this version."""
    if not plotly_bundle().is_file():
        raise Http404("the plotly package carries no plotly.min.js")
    compressed = "gzip" in request.headers.get("Accept-Encoding", "")
    response = HttpResponse(_bundle_bytes(compressed), content_type="text/javascript; charset=utf-8")
    if compressed:
        response["Content-Encoding"] = "gzip"
    patch_vary_headers(response, ["Accept-Encoding"])
    current = request.GET.get("v") == plotly_version()
    response["Cache-Control"] = f"public, max-age={YEAR}, immutable" if current else "public, max-age=300"
    return response
