"""TPS sources: local directory and SSH. ``open_tps_source`` picks one from a URL."""
from archiver.tps.base import CommandResult, Entry, TpsError, TpsSource, clean_relpath

__all__ = ["CommandResult", "Entry", "TpsError", "TpsSource", "clean_relpath"]
