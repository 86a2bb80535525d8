from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb.api_errors import ApiError

from .abuse import LoginThrottle, SignupThrottle, locked_out_error
from .services import user_create

THROTTLED = OpenApiResponse(description="{detail, code: throttled}: too many tries from this address; see Retry-After.")


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [SignupThrottle]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(write_only=True, trim_whitespace=False)
        email = serializers.EmailField(required=False, allow_blank=True)

        class Meta:
            ref_name = "RegisterInput"  # the schema's component name

        def validate_username(self, value):
            if get_user_model().objects.filter(username__iexact=value).exists():
                raise serializers.ValidationError("A user with that username already exists.")
            return value

    @extend_schema(
        request=InputSerializer,
        responses={
            201: inline_serializer("Registered", {"id": serializers.IntegerField(), "username": serializers.CharField()}),
            400: OpenApiResponse(description="{detail, code: invalid, fields}: a taken username or a weak password."),
            403: OpenApiResponse(description="{detail, code: signup_closed}: FERWEB_OPEN_SIGNUP is False."),
            429: THROTTLED,
        },
    )
    def post(self, request):
        if not settings.FERWEB_OPEN_SIGNUP:
            raise ApiError("signup_closed", "Sign-up is closed on this server.", status=status.HTTP_403_FORBIDDEN)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = user_create(**serializer.validated_data)
        except DjangoValidationError as error:
            key = "password" if hasattr(error, "error_list") and not hasattr(error, "error_dict") else None
            detail = {key: error.messages} if key else error.message_dict
            raise serializers.ValidationError(detail) from error
        return Response({"id": user.id, "username": user.username}, status=status.HTTP_201_CREATED)


class TokenApi(APIView):
    """`{username, password}` -> `{token}`; send it as `Authorization: Token <token>`."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [LoginThrottle]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(write_only=True, trim_whitespace=False)

        class Meta:
            ref_name = "TokenInput"

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer("AuthToken", {"token": serializers.CharField()}),
            400: OpenApiResponse(description="{detail, code: invalid_credentials}: wrong username or password."),
            429: OpenApiResponse(
                description="{detail, code: throttled | locked_out}: too many tries from this address, or too many "
                "failed logins for this account from it; see Retry-After."
            ),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # With the request, axes counts the failure and refuses a locked-out pair before any hashing.
        user = authenticate(request=request, **serializer.validated_data)
        if getattr(request, "axes_locked_out", False):
            raise locked_out_error(request)
        if user is None:
            raise ApiError("invalid_credentials", "Unable to log in with the given username and password.")
        # A token is a login: axes forgets this pair's failures and last_login is kept up to date.
        user_logged_in.send(sender=user.__class__, request=request, user=user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
