"""Template tags every page shares: the class list for the page scripts, and the chart scripts."""
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
