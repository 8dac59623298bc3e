"""What IT's monitoring reads: ``/healthz`` (health.py) and ``/metrics`` (metrics.py, Prometheus text).

Neither names a patient: institution codes, target names, categories and counts only. Both answer only
a caller allowed by ``access.py`` (a bearer token, or an address in ``PDAS_MONITORING_ALLOW``).
"""
