#!/usr/bin/env bash
# PDAS developer harness: one script behind the README's commands (docs/testing.md).
#
#   deploy/dev.sh setup            system packages, .venv, Python packages (idempotent, quick when done)
#   deploy/dev.sh test [ARGS...]   setup, ruff and mypy, then the whole suite on SQLite and again on PostgreSQL
#   deploy/dev.sh demo             setup, demo site and data, a `demo` login, serve on 127.0.0.1:8000
#                                  (its own database in var/demo-data, made anew each time; refused at once,
#                                  changing nothing, while the port is taken: a running demo is never touched)
#   deploy/dev.sh freeze           rewrite requirements/constraints.txt from the current .venv
#
# Runs as root or through sudo on Debian 12 / Ubuntu. It never starts system services: the tests
# start their own servers on free loopback ports. Environment:
#   PDAS_PYTHON=python3.12       the interpreter for a new .venv (default python3, needs >= 3.11)
#   PDAS_DEMO_NO_SERVE=1         demo: prepare everything but do not serve
#   PDAS_DEMO_PORT=8000          demo: the loopback port to serve on
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"
PACKAGES_FILE="$REPO/deploy/apt-packages.txt"
CONSTRAINTS="$REPO/requirements/constraints.txt"
STAMP="$VENV/.pdas-setup-stamp"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'deploy/dev.sh: %s\n' "$*" >&2; exit 2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (run as root or install sudo)"
    fi
}

wanted_packages() {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PACKAGES_FILE" | grep -v '^$'
}

missing_packages() {
    local package
    for package in $(wanted_packages); do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" != "installed" ]; then
            echo "$package"
        fi
    done
}

install_system_packages() {
    local missing available=() unavailable=() package policy_made=0
    missing="$(missing_packages)"
    if [ -z "$missing" ]; then
        return 0
    fi
    say "Installing system packages: $(echo $missing)"
    as_root apt-get update -qq
    for package in $missing; do
        if apt-cache show "$package" >/dev/null 2>&1; then
            available+=("$package")
        else
            unavailable+=("$package")
        fi
    done
    if [ ${#unavailable[@]} -gt 0 ]; then
        echo "deploy/dev.sh: not available on this distribution: ${unavailable[*]}" \
             "(the tests that need them will report it)" >&2
    fi
    [ ${#available[@]} -gt 0 ] || return 0
    # Debian starts a service when its package is installed; policy-rc.d (exit 101) forbids that.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
        policy_made=1
        trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT  # also when interrupted
    fi
    local status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${available[@]}" \
        || status=$?
    if [ "$policy_made" -eq 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d
    fi
    [ "$status" -eq 0 ] || die "apt-get install failed (status $status)"
    disable_boot_services "${available[@]}"
}

disable_boot_services() {
    # The tests start their own servers; a server package installed here is not left to start at boot
    # (Debian enables its unit on install). Only the packages this run installed: an sshd that was
    # already there (how someone logs in) is left as it was.
    local package unit
    for package in "$@"; do
        case "$package" in
            openssh-server) set -- ssh.service ;;
            redis-server) set -- redis-server.service ;;
            samba) set -- smbd.service nmbd.service samba-ad-dc.service ;;
            postgresql|postgresql-[0-9]*) set -- postgresql.service ;;
            vsftpd) set -- vsftpd.service ;;
            nginx) set -- nginx.service ;;
            *) continue ;;
        esac
        for unit in "$@"; do
            as_root deb-systemd-helper disable "$unit" >/dev/null 2>&1 || true
            if command -v systemctl >/dev/null 2>&1; then as_root systemctl disable "$unit" >/dev/null 2>&1 || true; fi
        done
    done
}

port_holder() {
    # Prints who listens on 127.0.0.1:$1 and succeeds when someone does.
    "${PDAS_PYTHON:-python3}" - "$1" <<'PY' || return 1
import socket, sys
port = int(sys.argv[1])
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        sys.exit(0)
sys.exit(1)
PY
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\))).*/\1/p' | head -1
    fi
    return 0
}

setup_stamp() {
    # What the installed Python packages depend on: when none of it changed, pip is skipped.
    cat "$REPO/pyproject.toml" "$CONSTRAINTS" 2>/dev/null | sha256sum | cut -d' ' -f1
    "$VENV/bin/python" -c 'import sys; print(sys.version)'
}

cmd_setup() {
    [ -f "$PACKAGES_FILE" ] || die "$PACKAGES_FILE is missing"
    install_system_packages
    local python="${PDAS_PYTHON:-python3}"
    if [ ! -x "$VENV/bin/python" ]; then
        command -v "$python" >/dev/null 2>&1 || die "$python not found (set PDAS_PYTHON to a Python >= 3.11)"
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "$python is $("$python" -V 2>&1 | cut -d' ' -f2); PDAS needs Python >= 3.11 (set PDAS_PYTHON)"
        say "Creating $VENV"
        "$python" -m venv "$VENV"
    fi
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(setup_stamp)" ]; then
        return 0
    fi
    say "Installing Python packages into .venv"
    local constraints=()
    [ -f "$CONSTRAINTS" ] && constraints=(-c "$CONSTRAINTS")
    "$VENV/bin/python" -m pip install -q "${constraints[@]}" -e '.[test]'
    setup_stamp > "$STAMP"
}

cmd_freeze() {
    [ -x "$VENV/bin/python" ] || die "no .venv yet: run deploy/dev.sh setup"
    mkdir -p "$(dirname "$CONSTRAINTS")"
    {
        echo "# Versions the suite was last run with (deploy/dev.sh freeze). Used as pip -c by deploy/dev.sh setup."
        # --all keeps setuptools (tests/test_packaging.py builds with it); pip itself is not pinned.
        "$VENV/bin/python" -m pip freeze --all --exclude-editable | grep -v -e '^-e ' -e '^pip=='
    } > "$CONSTRAINTS"
    say "Wrote $CONSTRAINTS"
}

# --- test ---------------------------------------------------------------------------------------

summarize_junit() {
    # "passed P, failed F, errors E, skipped S" from a pytest --junitxml file.
    "$VENV/bin/python" - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("no results")
    sys.exit()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
count = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
print(f"{passed} passed, {count['failures']} failed, {count['errors']} errors, {count['skipped']} skipped")
PY
}

run_step() {
    # run_step KIND NAME COMMAND...: runs, records the status in $RESULTS/NAME.status for the summary.
    # KIND "check": a static check (configured in pyproject.toml); "suite": pytest, whose exit 5
    # ("no tests collected") counts as a failure.
    local kind="$1" name="$2"; shift 2
    local status=0
    if [ "$kind" = suite ]; then say "Test suite on $name"; else say "$name"; fi
    "$@" || status=$?
    if [ "$kind" = suite ] && [ "$status" -eq 5 ]; then
        echo "deploy/dev.sh: pytest collected no tests on $name" >&2
    elif [ "$kind" = check ] && [ "$status" -ne 0 ]; then
        echo "deploy/dev.sh: $name failed (exit $status); the test suites run all the same" >&2
    fi
    printf '%s' "$status" > "$RESULTS/$name.status"
}

cmd_test() {
    cmd_setup
    RESULTS="$REPO/var/test-results"
    mkdir -p "$RESULTS"
    rm -f "$RESULTS"/*.xml "$RESULTS"/*.status
    run_step check ruff "$VENV/bin/ruff" check "$REPO"
    run_step check mypy "$VENV/bin/mypy"
    export PDAS_TEST_REQUIRE_SERVERS=1  # a missing server binary fails the run instead of skipping
    local pytest=("$VENV/bin/python" -m pytest)
    run_step suite sqlite env -u DATABASE_URL "${pytest[@]}" --junitxml="$RESULTS/sqlite.xml" "$@"
    run_step suite postgresql env -u DATABASE_URL "$VENV/bin/python" -m tests.servers.postgres -- \
        "${pytest[@]}" --junitxml="$RESULTS/postgresql.xml" "$@"
    local overall=0 line="" name status
    for name in ruff mypy; do
        status="$(cat "$RESULTS/$name.status")"
        if [ "$status" -eq 0 ]; then line+="$name: clean; "; else line+="$name: FAILED (exit $status); "; overall=1; fi
    done
    for name in sqlite postgresql; do
        status="$(cat "$RESULTS/$name.status")"
        line+="$name: $(summarize_junit "$RESULTS/$name.xml") (exit $status); "
        [ "$status" -eq 0 ] || overall=1
    done
    if [ "$overall" -eq 0 ]; then
        echo "PDAS test summary: ${line}PASSED"
    else
        echo "PDAS test summary: ${line}FAILED"
    fi
    return "$overall"
}

# --- demo ---------------------------------------------------------------------------------------

manage() { "$VENV/bin/python" "$REPO/manage.py" "$@"; }
has_command() { manage help "$1" >/dev/null 2>&1; }

demo_window() {
    # "FROM TO" for scan_losses, from var/demo/expected.json: its scan_window when it names one (the
    # window its expected summary is for), else the span of its first deliveries; else the last 365 days.
    "$VENV/bin/python" - "$REPO/var/demo/expected.json" <<'PY'
import datetime as dt
import json
import sys

def day(value):
    return str(value)[:10] if value else None

try:
    with open(sys.argv[1], encoding="utf-8") as handle:
        expected = json.load(handle)
except (OSError, ValueError):
    expected = {}
window = expected.get("scan_window") or {} if isinstance(expected, dict) else {}
deliveries = [day(d.get("first_delivery")) for d in expected.get("deliveries", []) if isinstance(d, dict)] \
    if isinstance(expected, dict) else []
deliveries = [d for d in deliveries if d]
if day(window.get("from")) and day(window.get("to")):
    print(day(window["from"]), day(window["to"]))
elif deliveries:
    print(min(deliveries), max(deliveries))
else:
    today = dt.date.today()
    print(today - dt.timedelta(days=365), today)
PY
}

run_demo_step() {
    # Exit 1 means "findings for a person" (expected in a demo); anything above is a real failure.
    local status=0
    manage "$@" || status=$?
    if [ "$status" -gt 1 ]; then
        die "manage.py $* failed (status $status)"
    fi
}

cmd_demo() {
    local port="${PDAS_DEMO_PORT:-8000}" holder
    if [ "${PDAS_DEMO_NO_SERVE:-}" != "1" ] && holder="$(port_holder "$port")"; then
        die "127.0.0.1:$port is in use${holder:+ by $holder}: stop it (or set PDAS_DEMO_PORT); nothing was changed"
    fi
    cmd_setup
    # The demo's own data folder, made anew with its files: no archive row outlives the files it names.
    export PDAS_DATA_DIR="$REPO/var/demo-data"
    mkdir -p "$PDAS_DATA_DIR"
    rm -f "$PDAS_DATA_DIR/pdas.sqlite3" "$PDAS_DATA_DIR/pdas.sqlite3-wal" "$PDAS_DATA_DIR/pdas.sqlite3-shm"
    say "Preparing the demo database"
    manage migrate --noinput
    if has_command make_demo_site; then
        manage make_demo_site var/demo --force
    else
        echo "deploy/dev.sh: manage.py make_demo_site is not available yet; no demo data" >&2
    fi
    if [ -f var/demo/site.toml ] && has_command load_site_config; then
        manage load_site_config var/demo/site.toml
    fi
    local window from to
    window="$(demo_window)"
    from="${window% *}"
    to="${window#* }"
    if has_command curate; then run_demo_step curate --institution DEMO; fi
    if has_command archive; then run_demo_step archive --institution DEMO; fi
    if has_command scan_losses; then run_demo_step scan_losses --institution DEMO --from "$from" --to "$to"; fi
    local password
    password="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(12))')"
    PDAS_DEMO_PASSWORD="$password" manage shell -v 0 -c '
import os
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username="demo")
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(os.environ["PDAS_DEMO_PASSWORD"])
user.save()
'
    manage collectstatic --noinput -v 0
    echo
    echo "    Log in at http://127.0.0.1:$port as demo / $password"
    echo
    if [ "${PDAS_DEMO_NO_SERVE:-}" = "1" ]; then
        return 0
    fi
    # Debug pages stay off (DJANGO_DEBUG unset): --insecure lets runserver serve the static files anyway.
    exec "$VENV/bin/python" "$REPO/manage.py" runserver "127.0.0.1:$port" --noreload --insecure
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

main() {
    local command="${1:-}"
    [ $# -gt 0 ] && shift
    case "$command" in
        setup) cmd_setup ;;
        test) cmd_test "$@" ;;
        demo) cmd_demo ;;
        freeze) cmd_freeze ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
