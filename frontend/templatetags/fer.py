"""Template tags every page shares: the class list for the page scripts, the chart scripts, and the
number filters that write numbers as FerWeb.format (common.js) does, so a page and its script agree."""
from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html, json_script

from fercore.classes import CLASSES
from frontend.views import plotly_version

register = template.Library()


@register.simple_tag
def fer_classes():
    """The seven classes in contract order, as JSON in <script id="fer-classes"> (FerWeb.CLASSES reads it)."""
    return json_script(list(CLASSES), "fer-classes")


@register.simple_tag
def chart_scripts():
    """plotly.js and our wrapper over it, deferred: only pages that draw charts load the 4.6 MB bundle.

    The bundle's URL carries the plotly version, so browsers may keep it for a year.
    """
    return format_html('<script src="{}?v={}" defer></script>\n  <script src="{}" defer></script>',
                       reverse("plotly-js"), plotly_version(), static("js/charts.js"))


def _fixed(value: float, digits: int) -> str:
    """JavaScript's Number.toFixed: the exact binary value rounded, halves away from zero."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _as_float(value) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number or number in (float("inf"), float("-inf")) else number


@register.filter
def percent(share, digits=1):
    """A share 0-1 as "13.5%" (one decimal unless told), "–" when there is none: FerWeb.format.percent."""
    share = _as_float(share)
    return "–" if share is None else f"{_fixed(100 * share, int(digits))}%"


@register.filter
def thousands(value):
    """A count as "28,709": FerWeb's pages write counts with thousands separators."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value


@register.filter
def number(value, digits=3):
    """A score such as macro F1 as "0.512" (three decimals unless told), "–" when there is none."""
    value = _as_float(value)
    return "–" if value is None else _fixed(value, int(digits))


@register.filter
def baseline(metrics):
    """{majority_class, majority_accuracy} of held-out metrics with per-class support, else None."""
    from training_jobs.selectors import majority_baseline

    return majority_baseline(metrics) if isinstance(metrics, dict) else None
