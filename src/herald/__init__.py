"""Herald: Telegram notification delivery with exactly-once semantics."""
