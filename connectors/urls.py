"""URL checks every connector family shares (each family's ``url_problem`` uses them), and ``redact_url``:
the one way a connection URL is put into a message (errors, audit details, logs)."""
from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus, urlsplit

# Query parameter names that carry a secret: these exactly, or any name containing one of SECRET_PARTS
# (``sslpassword``, ``client_secret``, ``access_token``). Compared lower-cased and percent-decoded.
SECRET_NAMES = frozenset({"password", "pass", "passwd", "pwd", "secret", "token", "key", "apikey", "api_key"})
SECRET_PARTS = ("password", "passwd", "secret", "token")
HIDDEN = "***"


def is_secret_name(name: str) -> bool:
    """Whether a query parameter called ``name`` looks like it holds a secret (case-insensitive)."""
    lowered = unquote_plus(name).strip().lower()
    return lowered in SECRET_NAMES or any(part in lowered for part in SECRET_PARTS)


def _pairs(text: str) -> list[str]:
    return re.split(r"[&;]", text) if text else []


def secret_query_names(url: str) -> list[str]:
    """The names of the URL's query (and fragment) parameters that look like secrets, as written."""
    base, _, fragment = url.partition("#")
    query = base.partition("?")[2]
    return [unquote_plus(pair.partition("=")[0]) for pair in _pairs(query) + _pairs(fragment)
            if is_secret_name(pair.partition("=")[0])]


def inline_password_problem(url: str, where: str) -> str | None:
    """A secret written into the URL, as ``user:password@host`` or as a query parameter (``?password=``,
    ``?token=`` ...), is refused before anything else, so no message ever repeats a URL that holds a
    secret. ``where`` names the keys that hold it instead. The message names the parameter, never its value."""
    try:
        inline = urlsplit(url).password is not None
    except ValueError:
        inline = False
    if inline:
        return f"the URL holds a password (user:password@host); remove it and use {where}"
    if names := secret_query_names(url):
        return f"the URL holds a secret in its query ({names[0]}=...); remove it and use {where}"
    return None


def _redact_userinfo(url: str) -> str:
    """``scheme://user:secret@host/...`` -> ``scheme://user:***@host/...``; the authority ends at the first ``/``
    (not at ``?`` or ``#``, which an unencoded password may hold)."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return url
    start = scheme_end + 3
    end = url.find("/", start)
    end = len(url) if end < 0 else end
    userinfo, at, host = url[start:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{url[:start]}{user}:{HIDDEN}@{host}{url[end:]}"


def _redact_pairs(text: str) -> str:
    def one(pair: str) -> str:
        name, equals, _ = pair.partition("=")
        return f"{name}={HIDDEN}" if equals and is_secret_name(name) else pair

    return "".join(one(part) if part not in ("&", ";") else part for part in re.split(r"([&;])", text))


def redact_url(url: str) -> str:
    """``url`` fit for a message: a password in it (``user:password@host``) and the values of secret-looking
    query parameters (``?password=``, ``?token=`` ...) become ``***``; the scheme, user, host and path stay,
    so the message still says where. Every message PDAS writes about a connection puts its URL through this:
    the configuration rules refuse such URLs, but a row saved before them, or a URL typed into a
    command, must not carry its secret into an error page, an e-mail or the audit log."""
    text = _redact_userinfo(str(url))
    base, hash_mark, fragment = text.partition("#")
    path, question_mark, query = base.partition("?")
    return f"{path}{question_mark}{_redact_pairs(query)}{hash_mark}{_redact_pairs(fragment)}"


def file_url_problem(url: str) -> str | None:
    """Why ``url`` is not ``file:///absolute/folder``, or None."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.netloc:
        return f"{shown}: a file URL takes no host; write file:///absolute/path (three slashes)"
    if parts.query or parts.fragment:
        return f"{shown}: no ?query or #fragment in a file URL"
    path = unquote(parts.path)
    if not path.startswith("/") or path == "/":
        return f"{shown}: needs an absolute folder path, as in file:///data/pinnacle/Patients"
    return None
