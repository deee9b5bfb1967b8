from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "buyer.backups"
    label = "backups"
    verbose_name = "Backups"
