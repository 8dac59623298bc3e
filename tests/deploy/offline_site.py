"""An installed PDAS on a server with no network: the scenario of tests/deploy/test_offline_install.py.

    unshare -n -- python -m tests.deploy.offline_site --work DIR --bundle A.tar.gz --next-bundle B.tar.gz

runs inside a new network namespace (no interface but loopback), so any attempt to reach the network
fails. It plays the server and its administrator:

1. starts a PostgreSQL cluster as Debian's does (``postgres`` account, peer authentication on its socket,
   passwords over 127.0.0.1), and gives Redis a copy of Debian's ``redis.conf``;
2. runs ``deploy/install`` from bundle A into DIR (``--prefix``, ``--config-dir``, ... under DIR), then
   again, and compares every file, mode, owner and link before and after the second run;
3. starts the services' commands exactly as the installed units run them (``User=``,
   ``WorkingDirectory=``, ``Environment=``, ``EnvironmentFile=``, ``UMask=``, ``ExecStart=`` with its
   ``%`` specifiers and ``$VARIABLES``): gunicorn, the Celery worker and beat; nginx runs the installed
   site, Redis the installed configuration;
4. a headless Chromium logs in over HTTPS (the installer's self-signed certificate), starts an archive
   run of a demo site and a loss scan from their pages, and waits for both to finish; ``/healthz`` and
   ``/metrics`` answer with the installed monitoring token;
5. upgrades to bundle B (one more migration) with B's own ``upgrade`` script, checks the data and the
   migration, rolls back with ``deploy/upgrade --rollback`` and checks again.

It prints one JSON object of what it measured and saw; the test asserts on it. systemd cannot run
here (no PID 1 of ours), so starting and stopping the units is what this script does in its place.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import http.client
import json
import os
import pwd
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path

HOST_NAME = "pdas.example.test"
SERVICE_USER = "pdas-offline"
INSTITUTION = "DEMO"
SERVICES = ["pdas-web.service", "pdas-worker.service", "pdas-beat.service"]


class ScenarioError(RuntimeError):
    pass


def run(argv: list[str], *, env: dict | None = None, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise ScenarioError(f"{shlex.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


class Layout:
    """Where the installer is told to put things: the standard paths, under one folder."""

    def __init__(self, work: Path):
        self.work = work
        self.prefix = work / "opt/pdas"
        self.conf = work / "etc/pdas"
        self.data = work / "var/lib/pdas"
        self.systemd = work / "etc/systemd/system"
        self.nginx = work / "etc/nginx"
        self.redis_conf = work / "etc/redis/redis.conf"
        self.pg_data = work / "pg/data"
        self.pg_socket = work / "pg/run"
        self.logs = work / "logs"

    def install_options(self) -> list[str]:
        return ["--prefix", str(self.prefix), "--config-dir", str(self.conf), "--data-dir", str(self.data),
                "--user", SERVICE_USER, "--hostname", HOST_NAME, "--systemd-dir", str(self.systemd),
                "--nginx-dir", str(self.nginx), "--redis-conf", str(self.redis_conf),
                "--pg-socket-dir", str(self.pg_socket), "--pg-port", "5432"]

    def manage(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return run([str(self.prefix / "bin/pdas-manage"), *args], env=env, check=check)


# --- the servers the installer expects to find ------------------------------------------------------

def start_postgres(layout: Layout) -> subprocess.Popen:
    (binaries,) = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]
    postgres = pwd.getpwnam("postgres")
    for folder in (layout.pg_data.parent, layout.pg_data, layout.pg_socket):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, postgres.pw_uid, postgres.pw_gid)
    as_postgres = ["runuser", "-u", "postgres", "--"]
    run([*as_postgres, f"{binaries}/initdb", "-D", str(layout.pg_data), "--auth-local=peer",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
    log = open(layout.logs / "postgres.log", "w")
    process = subprocess.Popen([*as_postgres, f"{binaries}/postgres", "-D", str(layout.pg_data), "-p", "5432",
                                "-k", str(layout.pg_socket), "-c", "listen_addresses=127.0.0.1",
                                "-c", "fsync=off", "-c", "synchronous_commit=off"],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: run([*as_postgres, f"{binaries}/pg_isready", "-q", "-h", str(layout.pg_socket), "-p", "5432"],
                         check=False).returncode == 0, "PostgreSQL", 60)
    return process


def prepare_redis_conf(layout: Layout) -> None:
    layout.redis_conf.parent.mkdir(parents=True, exist_ok=True)
    debian = Path("/etc/redis/redis.conf")
    text = debian.read_text() if debian.is_file() else "port 6379\n"
    layout.redis_conf.write_text(text)


def wait_for(predicate, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise ScenarioError(f"{what} did not come up within {seconds:.0f} s")


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --- the units, run as systemd would ----------------------------------------------------------------

def unit_settings(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def environment_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def unit_command(path: Path, instance: str = "") -> tuple[list[str], dict[str, str], dict]:
    """(argv, environment, how) of a service unit's ExecStart, resolved as systemd does."""
    unit = unit_settings(path)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for line in unit.get("Environment", []):
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            env[key] = value
    for name in unit.get("EnvironmentFile", []):
        optional = name.startswith("-")
        file = Path(name.lstrip("-"))
        if file.exists():
            env.update(environment_file(file))
        elif not optional:
            raise ScenarioError(f"{path.name}: EnvironmentFile {file} is missing")
    user = unit["User"][0]
    env.update({"HOME": pwd.getpwnam(user).pw_dir, "USER": user, "LOGNAME": user})
    (command,) = unit["ExecStart"]
    command = command.replace("%i", instance).replace("%H", socket.gethostname()).replace("%%", "%")
    argv: list[str] = []
    for word in shlex.split(command):
        braced = re.fullmatch(r"(.*?)\$\{([A-Za-z_][A-Za-z0-9_]*)\}(.*)", word)
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):  # unbraced: split into words, none when empty
            argv.extend(env.get(word[1:], "").split())
        elif braced:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
        else:
            argv.append(word)
    how = {"user": user, "cwd": unit["WorkingDirectory"][0], "umask": int(unit.get("UMask", ["0022"])[0], 8)}
    return argv, env, how


class Services:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.processes: dict[str, subprocess.Popen] = {}

    def start_unit(self, name: str) -> None:
        argv, env, how = unit_command(self.layout.systemd / name)
        log = open(self.layout.logs / f"{name}.log", "a")
        umask = how["umask"]
        self.processes[name] = subprocess.Popen(
            ["setpriv", f"--reuid={how['user']}", f"--regid={how['user']}", "--init-groups", "--", *argv],
            env=env, cwd=how["cwd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: os.umask(umask))

    def start_redis(self) -> None:
        (self.layout.work / "redis").mkdir(exist_ok=True)
        log = open(self.layout.logs / "redis.log", "a")
        # Where Debian's service would keep its files; bind, port and password stay the installed ones.
        self.processes["redis"] = subprocess.Popen(
            ["redis-server", str(self.layout.redis_conf), "--daemonize", "no", "--supervised", "no",
             "--dir", str(self.layout.work / "redis"), "--logfile", "", "--pidfile", str(self.layout.work / "redis.pid")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: listening(6379), "Redis", 30)

    def start_nginx(self) -> None:
        """nginx with the installed site; its log paths moved under the work folder."""
        site = (self.layout.nginx / "sites-enabled/pdas").read_text()
        site = site.replace("/var/log/nginx/", f"{self.layout.logs}/nginx-")
        (self.layout.work / "nginx-site.conf").write_text(site)
        main = self.layout.work / "nginx.conf"
        main.write_text(f"""pid {self.layout.work}/nginx.pid;
error_log {self.layout.logs}/nginx-main.error.log;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    include {self.layout.work}/nginx-site.conf;
}}
""")
        log = open(self.layout.logs / "nginx.log", "a")
        self.processes["nginx"] = subprocess.Popen(["nginx", "-c", str(main), "-g", "daemon off;"], stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: listening(443), "nginx", 30)

    def start_pdas(self) -> None:
        for name in SERVICES:
            self.start_unit(name)
        wait_for(lambda: listening(8000), "gunicorn (pdas-web.service)", 90)

    def stop_pdas(self) -> None:
        for name in SERVICES:
            self.stop(name)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


# --- checks -----------------------------------------------------------------------------------------

def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under the roots: its type, mode, owner and content digest or link target."""
    state = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            info = path.lstat()
            if path.is_symlink():
                what = ("link", os.readlink(path))
            elif path.is_file():
                what = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                what = ("dir", "")
            state[str(path)] = (*what, oct(info.st_mode), info.st_uid, info.st_gid)
    return state


def generated_secrets(layout: Layout) -> dict[str, str]:
    """What the installer generated: the secret files' contents and the passwords in the URLs."""
    found = {name: (layout.conf / name).read_text().strip()
             for name in ("django_secret_key", "audit_mac_key", "monitoring_token")}
    for file, key in (("pdas.env", "DATABASE_URL"), ("pdas.env", "CELERY_BROKER_URL"),
                      ("database-owner.env", "DATABASE_URL")):
        url = environment_file(layout.conf / file)[key]
        found[f"{file}:{key}"] = re.sub(r"^[a-z]+://[^:/@]*:([^@]*)@.*$", r"\1", url)
    return found


def shared_cache_facts(layout: Layout) -> dict:
    """Whether the installer pointed PDAS_CACHE_URL at the broker's Redis (another database), and which kept
    figures the web processes put there (core.kept keys, e.g. the home page's count); no secret returned."""
    import redis

    env = environment_file(layout.conf / "pdas.env")
    cache_url, broker_url = env.get("PDAS_CACHE_URL", ""), env["CELERY_BROKER_URL"]
    keys = redis.Redis.from_url(cache_url).keys("pdas:*") if cache_url else []
    return {"set": bool(cache_url), "broker_redis_database_1": cache_url == broker_url.rsplit("/", 1)[0] + "/1",
            "kept": sorted(key.decode().split(":")[3] for key in keys)}


def rotate_redis_password(layout: Layout, services: "Services", repo: Path, bundle: Path) -> dict:
    """docs/operations.md, "Rotating secrets", for Redis: drop the two URLs from pdas.env, run the installer
    again, restart. Returns whether the password changed, the cache URL followed, and Redis refuses the old
    password and takes the new one; /healthz afterwards (the scenario's) shows the broker answering."""
    import redis

    env_file = layout.conf / "pdas.env"
    old = generated_secrets(layout)["pdas.env:CELERY_BROKER_URL"]
    kept_lines = [line for line in env_file.read_text().splitlines(keepends=True)
                  if not line.startswith(("CELERY_BROKER_URL=", "PDAS_CACHE_URL="))]
    env_file.write_text("".join(kept_lines))
    services.stop_pdas()
    services.stop("redis")
    run(["bash", str(repo / "deploy/install"), *layout.install_options(), str(bundle)])
    services.start_redis()
    services.start_pdas()
    env = environment_file(env_file)
    new = generated_secrets(layout)["pdas.env:CELERY_BROKER_URL"]

    def accepted(password: str) -> bool:
        try:
            return bool(redis.Redis(host="127.0.0.1", port=6379, password=password, socket_timeout=5).ping())
        except redis.AuthenticationError:
            return False

    return {"changed": bool(new) and new != old, "mode": oct(env_file.stat().st_mode & 0o777),
            "cache_follows": env.get("PDAS_CACHE_URL", "") == env["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/1",
            "old_refused": not accepted(old), "new_accepted": accepted(new)}


# An address of this namespace's loopback that is not in PDAS_MONITORING_ALLOW's default (127.0.0.1/32):
# a client from it stands for a workstation on the hospital network.
OTHER_CLIENT = "10.9.8.7"


def https(path: str, *, token: str | None = None, source: str = "127.0.0.1") -> tuple[int, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the installer's self-signed certificate
    connection = http.client.HTTPSConnection("127.0.0.1", 443, context=context, timeout=30,
                                             source_address=(source, 0))
    headers = {"Host": HOST_NAME, **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def no_network() -> list[str]:
    """The interfaces of this namespace: loopback only, else the scenario proves nothing."""
    names = sorted(name for _, name in socket.if_nameindex())  # this namespace's (not /sys, the host's)
    if names != ["lo"]:
        raise ScenarioError(f"not in an empty network namespace: interfaces {names}")
    return names


def browser_session(layout: Layout, password: str, window: tuple[str, str]) -> dict:
    from selenium.webdriver.common.by import By

    from tests.servers.chromium import start_chromium

    # The name resolves to this namespace's loopback (Chromium is told so; /etc/hosts is not touched), and
    # the installer's certificate is self-signed.
    driver = start_chromium(layout.work / "chromium-profile", layout.logs / "chromedriver.log",
                            (f"--host-resolver-rules=MAP {HOST_NAME} 127.0.0.1", "--ignore-certificate-errors"))
    seen: dict = {}
    base = f"https://{HOST_NAME}"
    try:
        driver.get(f"{base}/accounts/login/")
        driver.find_element(By.NAME, "username").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "form[action=\"/accounts/login/\"] [type=submit]").click()
        wait_for(lambda: "/accounts/login/" not in driver.current_url, "the login", 30)
        seen["logged_in_url"] = driver.current_url
        seen["protocol"] = driver.execute_script("return document.location.protocol")

        driver.get(f"{base}/archive/runs/")
        driver.find_element(By.CSS_SELECTOR, "#start-run button[type=submit]").click()
        wait_for(lambda: re.search(r"/archive/runs/\d+/$", driver.current_url), "the archive run's page", 30)
        seen["run_url"] = driver.current_url.replace(base, "")

        def run_finished() -> bool:
            driver.refresh()
            return driver.find_element(By.ID, "run-status").get_attribute("data-status") in ("done", "failed")
        wait_for(run_finished, "the archive run", 300)
        seen["run_status"] = driver.find_element(By.ID, "run-status").get_attribute("data-status")
        seen["run_badge"] = driver.find_element(By.CSS_SELECTOR, '#run-status [data-field="status"]').text
        seen["run_results"] = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "td.result")]

        driver.get(f"{base}/loss/")
        driver.execute_script(
            "document.querySelector('#manual-scan [name=window_from]').value = arguments[0];"
            "document.querySelector('#manual-scan [name=window_to]').value = arguments[1];", *window)
        driver.find_element(By.CSS_SELECTOR, "#manual-scan button[type=submit]").click()
        wait_for(lambda: re.search(r"/loss/scan/\d+/$", driver.current_url), "the loss scan's page", 30)
        seen["scan_url"] = driver.current_url.replace(base, "")

        def scan_finished() -> bool:
            driver.refresh()
            return not driver.find_elements(By.ID, "scan-running")
        wait_for(scan_finished, "the loss scan", 300)
        seen["scan_badge"] = driver.find_element(By.ID, "scan-status").text
        seen["scan_badge_class"] = driver.find_element(By.ID, "scan-status").get_attribute("class")
        driver.save_screenshot(str(layout.work / "scan.png"))
    finally:
        driver.quit()
    return seen


def logs_tail(layout: Layout) -> str:
    parts = []
    for log in sorted(layout.logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-15:]
        parts.append(f"--- {log.name}\n" + "\n".join(lines))
    return "\n".join(parts)


# --- the scenario ------------------------------------------------------------------------------------

def scenario(layout: Layout, bundle: Path, next_bundle: Path, repo: Path) -> dict:
    result: dict = {"interfaces": no_network()}
    layout.logs.mkdir(parents=True, exist_ok=True)
    postgres = start_postgres(layout)
    services = Services(layout)
    try:
        prepare_redis_conf(layout)
        started = time.monotonic()
        install = run(["bash", str(repo / "deploy/install"), *layout.install_options(), str(bundle)])
        result["install_seconds"] = round(time.monotonic() - started, 1)
        result["install_output"] = install.stderr[-4000:]
        roots = [layout.prefix, layout.conf, layout.data, layout.systemd, layout.nginx, layout.redis_conf.parent]
        before = snapshot(*roots)
        again = run(["bash", str(repo / "deploy/install"), *layout.install_options(), str(bundle)])
        after = snapshot(*roots)
        result["second_install_changes"] = sorted(
            path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
        result["second_install_output"] = again.stderr[-2000:]
        env_file = layout.conf / "pdas.env"
        result["env_file_mode"] = oct(env_file.stat().st_mode & 0o777)
        result["env_conn_max_age"] = [line for line in env_file.read_text().splitlines()
                                      if line.startswith("DATABASE_CONN_MAX_AGE=")]
        printed = install.stdout + install.stderr + again.stdout + again.stderr
        result["secrets_printed"] = [name for name, secret in generated_secrets(layout).items() if secret in printed]

        services.start_redis()
        redis = socket.create_connection(("127.0.0.1", 6379), timeout=5)
        redis.sendall(b"PING\r\n")
        result["redis_without_password"] = redis.recv(200).decode().strip()
        redis.close()
        services.start_nginx()
        services.start_pdas()

        # The administrator's first steps (the installer's closing words): a login and a site.
        password = "Offline-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]
        site = layout.work / "site"
        site.mkdir()
        service_user = pwd.getpwnam(SERVICE_USER)
        os.chown(site, service_user.pw_uid, service_user.pw_gid)
        layout.manage("make_demo_site", str(site), "--force", "--institution", INSTITUTION)
        layout.manage("load_site_config", str(site / "site.toml"))
        layout.manage("createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.test",
                      env={**os.environ, "DJANGO_SUPERUSER_PASSWORD": password})
        expected = json.loads((site / "expected.json").read_text())
        window = expected.get("scan_window") or {}
        scan_window = (str(window.get("from", ""))[:10], str(window.get("to", ""))[:10])
        layout.manage("curate", "--institution", INSTITUTION, check=False)
        result["browser"] = browser_session(layout, password, scan_window)
        result["shared_cache"] = shared_cache_facts(layout)
        result["redis_rotation"] = rotate_redis_password(layout, services, repo, bundle)

        token = (layout.conf / "monitoring_token").read_text().strip()
        status, body = https("/healthz", token=token)
        result["healthz"] = {"status": status, "body": json.loads(body) if body.startswith("{") else body}
        status, body = https("/metrics", token=token)
        result["metrics"] = {"status": status, "pdas_up": [line for line in body.splitlines()
                                                           if line.startswith("pdas_up ")]}
        result["healthz_from_elsewhere"] = {"without_token": https("/healthz", source=OTHER_CLIENT)[0],
                                            "with_token": https("/healthz", token=token, source=OTHER_CLIENT)[0]}
        archives = layout.manage("shell", "-v", "0", "-c", "from inventory.models import Archive; print(Archive.objects.count())")
        result["archives_before_upgrade"] = int(archives.stdout.strip())

        # Upgrade with the next bundle's own script, then roll back.
        services.stop_pdas()
        unpacked = layout.work / "next-bundle"
        unpacked.mkdir()
        with tarfile.open(next_bundle) as archive:
            archive.extractall(unpacked, filter="data")
        (next_top,) = unpacked.iterdir()
        started = time.monotonic()
        upgrade = run(["bash", str(next_top / "upgrade"), *layout.install_options()])
        result["upgrade_seconds"] = round(time.monotonic() - started, 1)
        result["upgrade_output"] = upgrade.stderr[-3000:]
        result["after_upgrade"] = release_facts(layout)
        services.start_pdas()
        result["after_upgrade"]["login_page"] = https("/accounts/login/")[0]
        services.stop_pdas()
        started = time.monotonic()
        rollback = run(["bash", str(repo / "deploy/upgrade"), *layout.install_options(), "--rollback"])
        result["rollback_seconds"] = round(time.monotonic() - started, 1)
        result["rollback_output"] = rollback.stderr[-3000:]
        result["after_rollback"] = release_facts(layout)
        services.start_pdas()
        result["after_rollback"]["login_page"] = https("/accounts/login/")[0]
        result["backups"] = sorted(path.name for path in (layout.data / "backups").iterdir())
        return result
    except Exception:
        result["logs"] = logs_tail(layout)
        raise
    finally:
        services.stop_all()
        os.killpg(postgres.pid, signal.SIGTERM)
        postgres.wait(timeout=60)


def release_facts(layout: Layout) -> dict:
    probe = layout.manage("shell", "-v", "0", "-c", """
from django.db import connection
from inventory.models import Archive
from django.contrib.auth import get_user_model
print(Archive.objects.count(), get_user_model().objects.count(),
      "pdas_upgrade_probe" in connection.introspection.table_names())
""")
    archives, users, probe_table = probe.stdout.split()
    return {"current": os.readlink(layout.prefix / "current"), "archives": int(archives), "users": int(users),
            "probe_table": probe_table == "True"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--next-bundle", type=Path, required=True)
    args = parser.parse_args()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{OTHER_CLIENT}/32", "dev", "lo"], check=True)
    layout = Layout(args.work)
    repo = Path(__file__).resolve().parents[2]
    try:
        result = scenario(layout, args.bundle, args.next_bundle, repo)
    except ScenarioError as error:
        print(json.dumps({"error": str(error), "logs": logs_tail(layout)}))
        return 1
    except Exception:  # a slip of this script: its traceback, and what the servers said
        print(json.dumps({"error": traceback.format_exc(), "logs": logs_tail(layout)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
