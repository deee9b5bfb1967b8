from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "buyer.apikeys"
    label = "apikeys"
    verbose_name = "API keys"
