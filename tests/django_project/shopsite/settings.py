"""Settings of the test shop. The databases come from $SHOP_DATABASES (a JSON `DATABASES` dict),
as the tests set it per database kind; by default a SQLite file beside manage.py.

`TRUEUP_CONFIG` is left unset unless $SHOP_TRUEUP_CONFIG names one: trueup then reads the
`trueup.toml` in BASE_DIR.
"""

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "only-for-tests"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["trueup.contrib.django", "inventory"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = (
    json.loads(os.environ["SHOP_DATABASES"])
    if "SHOP_DATABASES" in os.environ
    else {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
)
if "SHOP_TRUEUP_CONFIG" in os.environ:
    TRUEUP_CONFIG = os.environ["SHOP_TRUEUP_CONFIG"]
LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"trueup": {"handlers": ["stderr"], "level": "INFO"}},
}
