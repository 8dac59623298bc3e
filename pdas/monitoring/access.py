"""Who may read ``/healthz`` and ``/metrics``: a caller with ``Authorization: Bearer <PDAS_MONITORING_TOKEN>``,
or one whose address (``core.client.client_address``: behind the proxies PDAS counts) is in
``PDAS_MONITORING_ALLOW`` (networks, default the loopback addresses). No login: a load balancer or a
Prometheus server has none, and nothing here names a patient."""
from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings

from core.client import client_address


def monitoring_allowed(request) -> bool:
    token = settings.PDAS_MONITORING_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    try:
        address = ipaddress.ip_address(client_address(request).split("%", 1)[0])
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.PDAS_MONITORING_ALLOW)
