"""Writes of the archiver app: one module per concern (``tps_sync``, ``archiving``, ``transfer``, ...).

Service functions are keyword-only and typed; management commands, views and Celery tasks call
them and nothing else, so every interface does the same thing.
"""
