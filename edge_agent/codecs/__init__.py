"""Pure codecs: functions over bytes and registers, no I/O."""
