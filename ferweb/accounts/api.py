from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb.api_errors import ApiError

from .services import user_create


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(write_only=True)
        email = serializers.EmailField(required=False, allow_blank=True)

        def validate_username(self, value):
            if get_user_model().objects.filter(username__iexact=value).exists():
                raise serializers.ValidationError("A user with that username already exists.")
            return value

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


class TokenApi(ObtainAuthToken):
    """`{username, password}` -> `{token}`; send it as `Authorization: Token <token>`."""
