from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import transaction


@transaction.atomic
def user_create(*, username: str, password: str, email: str = ""):
    """Create a user after Django's password validators accept the password."""
    User = get_user_model()
    user = User(username=username, email=email)
    validate_password(password, user=user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user
