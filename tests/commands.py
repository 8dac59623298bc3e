"""Running a management command in a test the way a script sees it: exit code, stdout, stderr."""
from __future__ import annotations

import io

from django.core.management import CommandError, call_command


def run_command(name: str, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr): 0 on return, ``SystemExit`` codes, ``CommandError.returncode``
    with its message as stderr (``manage.py`` prints it there)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except CommandError as exc:
        code, err = exc.returncode, io.StringIO(str(exc))
    return code, out.getvalue(), err.getvalue()
