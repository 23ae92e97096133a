"""Herald: Telegram notification delivery with exactly-once semantics."""

from herald.telegram import lazy_models

# Before any module of Herald imports aiogram: its models are built when first used.
lazy_models.install()
