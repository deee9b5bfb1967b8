from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "buyer.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"
