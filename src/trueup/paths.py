"""Where trueup looks and writes unless told otherwise; light, as the command line shows them in its help."""

from pathlib import Path

DEFAULT_CONFIG = Path("trueup.toml")
DEFAULT_BACKUP_DIRECTORY = Path("trueup-backups")
