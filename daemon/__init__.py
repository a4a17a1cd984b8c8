"""posd: the serial-tracking POS terminal daemon."""
