"""The ``dicom-qr://<called-AE>@<host>:<port>?calling=<our-AE>`` URL: its rules and its parts.

Kept apart from ``dicom_qr`` so the site configuration checks a URL without loading the DICOM
network library. The AE titles come from the URL only: PDAS never falls back to a default one,
because a DICOM node admits a peer by its AE title and a wrong guess would be refused or, worse,
answered as another system.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# The options after ``?``; every one but ``calling`` may be left out.
DEFAULT_TIMEOUTS = {"acse_timeout": 30.0, "dimse_timeout": 60.0, "network_timeout": 60.0}
OPTIONS = ("calling", "history_days", *DEFAULT_TIMEOUTS)
MAX_TIMEOUT = 3600.0
FORM = "dicom-qr://CALLED-AE@host:port?calling=OUR-AE"
# An AE title: 1-16 characters of DICOM's default repertoire, no backslash, no control characters;
# leading and trailing spaces carry no meaning in DICOM, so they are refused rather than kept.
_AE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")


@dataclass(frozen=True)
class DicomQrTarget:
    called_ae: str
    host: str
    port: int
    calling_ae: str
    history_days: int | None = None  # only plans first delivered in the last N days; None: all
    acse_timeout: float = DEFAULT_TIMEOUTS["acse_timeout"]  # connecting and associating
    dimse_timeout: float = DEFAULT_TIMEOUTS["dimse_timeout"]  # waiting for each answer of a query or fetch
    network_timeout: float = DEFAULT_TIMEOUTS["network_timeout"]  # a silent connection

    @property
    def name(self) -> str:
        """The node as messages name it: ``RVARCH@rv-host:104``."""
        return f"{self.called_ae}@{self.host}:{self.port}"


def ae_problem(value: str, what: str) -> str | None:
    if not value:
        return f"{what} is empty"
    if not _AE.fullmatch(value) or value != value.strip():
        return (f"{what} {value!r} is not a DICOM AE title (1-16 characters, no backslash, "
                "no leading or trailing spaces)")
    return None


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if name == "history_days":
        if not (value.is_integer() and value >= 1):
            raise ValueError(f"history_days={text} is not a whole number of days from 1")
    elif not (0 < value <= MAX_TIMEOUT):
        raise ValueError(f"{name}={text} is not a number of seconds above 0 and at most {MAX_TIMEOUT:.0f}")
    return value


def parse_dicom_qr_url(url: str) -> DicomQrTarget:
    """The parts of a ``dicom-qr://`` URL; ``ValueError`` with a one-line reason (no URL in it)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"the port is not a number from 1 to 65535 ({FORM})") from None
    if parts.scheme.lower() != "dicom-qr" or not url.lower().startswith("dicom-qr://"):
        raise ValueError(f"expected {FORM}")
    if parts.fragment or "#" in url:
        raise ValueError(f"a fragment (#...) has no meaning here ({FORM})")
    if parts.path not in ("", "/"):
        raise ValueError(f"a path ({parts.path}) has no meaning here ({FORM})")
    if parts.username is None:
        raise ValueError(f"no called AE title before the host ({FORM})")
    called = unquote(parts.username)
    if problem := ae_problem(called, "the called AE title"):
        raise ValueError(problem)
    if not parts.hostname:
        raise ValueError(f"no host ({FORM})")
    if port is None or port == 0:
        raise ValueError(f"no port: give the node's DICOM port, often 104 or 11112 ({FORM})")
    options: dict[str, str] = {}
    for pair in parts.query.split("&") if parts.query else []:
        name, equals, value = pair.partition("=")
        name, value = unquote(name), unquote(value)
        if name not in OPTIONS or not equals:
            raise ValueError(f"unknown option {name!r} (the options are {', '.join(OPTIONS)})")
        if name in options:
            raise ValueError(f"{name} is given twice")
        options[name] = value
    calling = options.pop("calling", None)
    if calling is None:
        raise ValueError(f"calling=OUR-AE is required: the AE title the node knows PDAS by ({FORM})")
    if problem := ae_problem(calling, "the calling AE title"):
        raise ValueError(problem)
    numbers = {name: _number(name, text) for name, text in options.items()}
    history = numbers.pop("history_days", None)
    return DicomQrTarget(called_ae=called, host=parts.hostname, port=port, calling_ae=calling,
                         history_days=None if history is None else int(history), **numbers)
