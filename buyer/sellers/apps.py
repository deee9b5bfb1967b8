from django.apps import AppConfig


class SellersConfig(AppConfig):
    name = "buyer.sellers"
    label = "sellers"
    verbose_name = "Sellers"
