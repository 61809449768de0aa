"""trueup in a Django project: `manage.py trueup …` and `keep_true()` (needs `pip install 'trueup[django]'`).

Add `"trueup.contrib.django"` to `INSTALLED_APPS`; then

    python manage.py trueup check                      # any trueup command, against DATABASES["default"]
    python manage.py trueup apply --rule storefront --database-alias replica_primary

and, in an app's `ready()`, keep a figure true after every commit that touches it:

    from trueup.contrib.django import keep_true
    keep_true(sender=TransferRequestLineItem, rule="storefront",
              key=lambda item: (item.request.storefront_id, item.product_id))

The config is `settings.TRUEUP_CONFIG` (default `trueup.toml` in `BASE_DIR`); the database is
the alias's entry in `settings.DATABASES`, turned into a SQLAlchemy URL by `trueup.contrib.django.database`.
"""

from trueup.contrib.django.database import config_path, database_url
from trueup.contrib.django.hooks import KeepTrue, keep_true, synced

__all__ = ["KeepTrue", "config_path", "database_url", "keep_true", "synced"]
