from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "ferweb.accounts"
    label = "accounts"
    verbose_name = "Accounts"
