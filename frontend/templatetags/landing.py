"""What the login page says about FERWeb: the shipped model's accuracy as its card records it."""
from django import template
from django.conf import settings

from fercore.classes import CLASSES
from frontend.templatetags.fer import percent

register = template.Library()


@register.simple_tag
def ferweb_intro() -> dict:
    """Facts for the introduction: the seven classes, whether sign-up is open, the shipped model's numbers.

    The accuracy is read from the model card (inference/models/default.json), so it stays true when
    another model is published; without a card it is None and the page leaves the line out.
    """
    from inference.selectors import shipped_model

    shipped = shipped_model()
    accuracy = shipped.metrics.get("accuracy")
    return {
        "classes": ", ".join(CLASSES),
        "signup_open": settings.FERWEB_OPEN_SIGNUP,
        "accuracy": None if accuracy is None else percent(accuracy),
    }
