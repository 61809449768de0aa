"""The Django app: listing it in INSTALLED_APPS makes `manage.py trueup` available."""

from django.apps import AppConfig


class TrueupConfig(AppConfig):
    name = "trueup.contrib.django"
    label = "trueup"
    verbose_name = "trueup"
