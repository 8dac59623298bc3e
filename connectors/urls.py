"""URL checks every connector family shares (each family's ``url_problem`` uses them)."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit


def inline_password_problem(url: str, where: str) -> str | None:
    """A password written into the URL (``user:password@host``) is refused before anything else, so no
    message ever repeats a URL that holds a secret. ``where`` names the keys that hold it instead."""
    try:
        inline = urlsplit(url).password is not None
    except ValueError:
        inline = False
    if inline:
        return f"the URL holds a password (user:password@host); remove it and use {where}"
    return None


def file_url_problem(url: str) -> str | None:
    """Why ``url`` is not ``file:///absolute/folder``, or None."""
    parts = urlsplit(url)
    if parts.netloc:
        return f"{url}: a file URL takes no host; write file:///absolute/path (three slashes)"
    if parts.query or parts.fragment:
        return f"{url}: no ?query or #fragment in a file URL"
    path = unquote(parts.path)
    if not path.startswith("/") or path == "/":
        return f"{url}: needs an absolute folder path, as in file:///data/pinnacle/Patients"
    return None
