from django.conf import settings
from django.contrib import admin
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpResponseForbidden
from django.shortcuts import redirect, render

from .abuse import LoginThrottle, SignupThrottle, throttle_posts

# Django's login views, throttled per address before their form checks (and hashes) a password.
login_view = throttle_posts(LoginThrottle)(auth_views.LoginView.as_view(template_name="accounts/login.html"))
admin_login_view = throttle_posts(LoginThrottle)(admin.site.login)


@throttle_posts(SignupThrottle)
def signup(request):
    if not settings.FERWEB_OPEN_SIGNUP:
        return HttpResponseForbidden("Sign-up is closed on this server.")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/signup.html", {"form": form})
