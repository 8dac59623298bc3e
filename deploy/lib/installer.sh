# shellcheck shell=bash
# What deploy/install and deploy/upgrade share (docs/operations.md, "Installing from an offline bundle").
# Sourced, never run. Every step checks before it changes, so running a script again changes nothing.

PDAS_SOURCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Debian's Python (package python3): the releases' environments are made with it, as deploy/bundle's wheels were.
PYTHON="${PDAS_PYTHON:-/usr/bin/python3}"

die() { printf '%s: %s\n' "$PDAS_SCRIPT" "$*" >&2; exit 2; }
say() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }

# --- options --------------------------------------------------------------------------------------

PREFIX=/opt/pdas
CONF=/etc/pdas
DATA=/var/lib/pdas
SERVICE_USER=pdas
SYSTEMD_DIR=/etc/systemd/system
NGINX_DIR=/etc/nginx
REDIS_CONF=/etc/redis/redis.conf
PG_SOCKET_DIR=/var/run/postgresql
PG_PORT=5432
HOST_NAME=""
WITH_DATABASE=1
WITH_REDIS=1
WITH_NGINX=1
START=1
BUNDLE_ARG=""
ROLLBACK=0

OPTIONS_HELP='
Options (defaults in brackets):
  --prefix DIR          releases and the current one [/opt/pdas]
  --config-dir DIR      pdas.env, site.toml, keys, tls/ [/etc/pdas]
  --data-dir DIR        the data folder, the service user'"'"'s home [/var/lib/pdas]
  --user NAME           the service user, made a system user when missing [pdas]
  --hostname NAME       the name users type (nginx, DJANGO_ALLOWED_HOSTS, the certificate) [hostname -f]
  --systemd-dir DIR     where the units go [/etc/systemd/system]
  --nginx-dir DIR       nginx'"'"'s configuration folder [/etc/nginx]
  --redis-conf FILE     the Redis server'"'"'s configuration [/etc/redis/redis.conf]
  --pg-socket-dir DIR   the local PostgreSQL'"'"'s socket folder [/var/run/postgresql]
  --pg-port PORT        its port, also for the services (on 127.0.0.1) [5432]
  --no-database         no local PostgreSQL: DATABASE_URL in pdas.env is yours to set
  --no-redis            no local Redis: CELERY_BROKER_URL in pdas.env is yours to set
  --no-nginx            no nginx site (another reverse proxy)
  --no-start            with systemd running: install and enable the units, start nothing'

parse_options() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --prefix|--config-dir|--data-dir|--user|--hostname|--systemd-dir|--nginx-dir|--redis-conf|--pg-socket-dir|--pg-port)
                [ $# -ge 2 ] || die "$1 needs a value"
                case "$1" in
                    --prefix) PREFIX="$2" ;; --config-dir) CONF="$2" ;; --data-dir) DATA="$2" ;;
                    --user) SERVICE_USER="$2" ;; --hostname) HOST_NAME="$2" ;; --systemd-dir) SYSTEMD_DIR="$2" ;;
                    --nginx-dir) NGINX_DIR="$2" ;; --redis-conf) REDIS_CONF="$2" ;;
                    --pg-socket-dir) PG_SOCKET_DIR="$2" ;; --pg-port) PG_PORT="$2" ;;
                esac
                shift 2 ;;
            --no-database) WITH_DATABASE=0; shift ;;
            --no-redis) WITH_REDIS=0; shift ;;
            --no-nginx) WITH_NGINX=0; shift ;;
            --no-start) START=0; shift ;;
            --rollback) [ "$PDAS_SCRIPT" = "deploy/upgrade" ] || die "unknown option $1"; ROLLBACK=1; shift ;;
            -h|--help) usage; printf '%s\n' "$OPTIONS_HELP"; exit 0 ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) [ -z "$BUNDLE_ARG" ] || die "one bundle only (got $BUNDLE_ARG and $1)"; BUNDLE_ARG="$1"; shift ;;
        esac
    done
    [ "$(id -u)" -eq 0 ] || die "run as root (it makes a system user, writes $CONF and the units)"
    for path in "$PREFIX" "$CONF" "$DATA" "$SYSTEMD_DIR" "$NGINX_DIR" "$REDIS_CONF" "$PG_SOCKET_DIR"; do
        case "$path" in /*) ;; *) die "$path: give an absolute path" ;; esac
        case "$path" in *[!A-Za-z0-9/._-]*) die "$path: only letters, digits, / . _ - in paths" ;; esac
    done
    [[ "$SERVICE_USER" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user $SERVICE_USER: not a valid user name"
    [[ "$PG_PORT" =~ ^[0-9]+$ ]] || die "--pg-port $PG_PORT: not a port number"
    if [ -z "$HOST_NAME" ]; then HOST_NAME="$(hostname -f 2>/dev/null || hostname)"; fi
    [[ "$HOST_NAME" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || die "--hostname $HOST_NAME: not a host name"
}

# --- the bundle -----------------------------------------------------------------------------------

BUNDLE=""       # the unpacked bundle's folder
RELEASE=""      # its release name, pdas-<version>-<source hash>

open_bundle() {
    local arg="$1"
    [ -n "$arg" ] || die "no bundle given (a pdas-*.tar.gz from deploy/bundle, or its unpacked folder)"
    if [ -d "$arg" ]; then
        BUNDLE="$(cd "$arg" && pwd)"
    elif [ -f "$arg" ]; then
        install -d -m 0755 "$PREFIX"
        local scratch
        scratch="$(mktemp -d "$PREFIX/.unpack.XXXXXX")"
        PDAS_CLEANUP+=("$scratch")
        tar -xzf "$arg" -C "$scratch" --no-same-owner || die "$arg: not a readable bundle (tar failed)"
        local tops=("$scratch"/pdas-*)
        [ ${#tops[@]} -eq 1 ] && [ -d "${tops[0]}" ] || die "$arg: not a PDAS bundle (no single pdas-* folder)"
        BUNDLE="${tops[0]}"
    else
        die "$arg: no such file"
    fi
    [ -f "$BUNDLE/BUNDLE.json" ] && [ -f "$BUNDLE/SHA256SUMS" ] || die "$arg: not a PDAS bundle (no BUNDLE.json)"
    (cd "$BUNDLE" && sha256sum --check --quiet --strict SHA256SUMS >/dev/null 2>&1) \
        || die "$arg: damaged (a file does not match SHA256SUMS); copy the bundle again"
    local facts
    facts="$("$PYTHON" - "$BUNDLE/BUNDLE.json" 2>&1 <<'PY'
import json, platform, sys
info = json.load(open(sys.argv[1], encoding="utf-8"))
here = "%d.%d" % sys.version_info[:2]
if info["python"] != here or info["machine"] != platform.machine():
    print(f"bundle built for Python {info['python']} on {info['machine']}, this server has Python {here} on "
          f"{platform.machine()}: build the bundle on the server's Debian release")
    sys.exit(1)
print(info["release"])
PY
)" || die "$arg: $(tail -1 <<<"$facts")"
    RELEASE="$facts"
    [[ "$RELEASE" =~ ^pdas-[A-Za-z0-9.+-]+$ ]] || die "$arg: odd release name in BUNDLE.json"
}

check_packages() {
    local missing=() package
    for package in $(sed -e 's/#.*//' "$BUNDLE/server-packages.txt"); do
        case "$package" in
            postgresql) [ "$WITH_DATABASE" -eq 1 ] || continue ;;
            redis-server) [ "$WITH_REDIS" -eq 1 ] || continue ;;
            nginx) [ "$WITH_NGINX" -eq 1 ] || continue ;;
        esac
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" = "installed" ] || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] || die "Debian packages missing: ${missing[*]} (install them from the hospital's mirror: apt-get install ${missing[*]})"
}

# --- the service user, folders, release -----------------------------------------------------------

ensure_user_and_folders() {
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        say "Making the system user $SERVICE_USER"
        useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    install -d -m 0755 -o root -g root "$PREFIX" "$PREFIX/releases" "$PREFIX/bin"
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA"
    install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF"
    install -d -m 0750 -o root -g root "$CONF/tls"
}

release_dir() { printf '%s/releases/%s' "$PREFIX" "$1"; }

install_release() {
    # A release folder is made in place (a virtual environment cannot be moved) and marked complete
    # last: one without the mark is a broken attempt, made again.
    local dir
    dir="$(release_dir "$RELEASE")"
    if [ -f "$dir/.pdas-release-complete" ]; then
        note "release $RELEASE already installed"
        return 0
    fi
    say "Installing release $RELEASE"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -a "$BUNDLE/source/." "$dir/"
    cp -a "$BUNDLE/static" "$dir/static"
    cp "$BUNDLE/BUNDLE.json" "$dir/BUNDLE.json"
    "$PYTHON" -m venv "$dir/.venv"
    local pip=("$dir/.venv/bin/python" -m pip --disable-pip-version-check --quiet --no-cache-dir)
    "${pip[@]}" install --no-index --find-links "$BUNDLE/wheels" --upgrade pip >&2
    "${pip[@]}" install --no-index --find-links "$BUNDLE/wheels" -c "$dir/requirements/constraints.txt" pdas >&2
    chown -R root:root "$dir"
    chmod -R u+w,go-w,a+rX "$dir"
    touch "$dir/.pdas-release-complete"
}

current_release() {
    # The release `current` points to, or nothing.
    local target
    target="$(readlink "$PREFIX/current" 2>/dev/null)" || return 0
    basename "$target"
}

point_current_at() {
    local name="$1" previous
    previous="$(current_release)"
    [ "$previous" = "$name" ] && return 0
    # A new link, then rename over the old one: `current` is never missing, not even for a moment.
    ln -sfn "releases/$name" "$PREFIX/current.new"
    mv -T "$PREFIX/current.new" "$PREFIX/current"
    note "current -> $name"
}

# --- secrets and the environment file -------------------------------------------------------------

new_secret() { "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(36))'; }

env_value() {
    # The value of KEY in FILE (last one wins, as systemd reads it), or nothing.
    local file="$1" key="$2"
    [ -f "$file" ] || return 0
    sed -n "s/^${key}=//p" "$file" | tail -1
}

env_add_missing() {
    # Appends KEY=VALUE to FILE unless FILE sets KEY already: what an administrator wrote stays.
    local file="$1" key="$2" value="$3"
    if ! grep -q "^${key}=" "$file"; then
        printf '%s=%s\n' "$key" "$value" >>"$file"
        note "$file: $key set"
    fi
}

secret_file() {
    # A secret in a file of its own, readable by the service user only; made once, never printed.
    local path="$1"
    if [ ! -s "$path" ]; then
        (umask 077 && new_secret >"$path.new") && mv -f "$path.new" "$path"
        note "$path: made"
    fi
    chown "$SERVICE_USER:$SERVICE_USER" "$path"
    chmod 0600 "$path"
}

ensure_environment() {
    local env_file="$CONF/pdas.env"
    if [ ! -f "$env_file" ]; then
        install -m 0600 -o root -g root /dev/null "$env_file"
        cat >>"$env_file" <<EOF
# PDAS settings of every service (docs/operations.md, "Environment file"; docs/configuration.md).
# Root only, mode 0600: it holds passwords. Never print it. After a change: systemctl restart pdas.target
EOF
    fi
    chown root:root "$env_file"
    chmod 0600 "$env_file"
    env_add_missing "$env_file" DJANGO_ALLOWED_HOSTS "$HOST_NAME"
    env_add_missing "$env_file" PDAS_BASE_URL "https://$HOST_NAME"
    if ! grep -q '^DJANGO_SECRET_KEY\(_FILE\)\?=' "$env_file"; then
        secret_file "$CONF/django_secret_key"
        env_add_missing "$env_file" DJANGO_SECRET_KEY_FILE "$CONF/django_secret_key"
    fi
    if ! grep -q '^PDAS_AUDIT_MAC_KEY\(_FILE\)\?=' "$env_file"; then
        secret_file "$CONF/audit_mac_key"
        env_add_missing "$env_file" PDAS_AUDIT_MAC_KEY_FILE "$CONF/audit_mac_key"
    fi
    if ! grep -q '^PDAS_MONITORING_TOKEN\(_FILE\)\?=' "$env_file"; then
        secret_file "$CONF/monitoring_token"
        env_add_missing "$env_file" PDAS_MONITORING_TOKEN_FILE "$CONF/monitoring_token"
    fi
    env_add_missing "$env_file" PDAS_PROXY_COUNT 1
    # Keep each web process's database connection for a minute: a new one per request costs its own
    # PostgreSQL backend and password exchange (docs/operations.md, "Sizing").
    env_add_missing "$env_file" DATABASE_CONN_MAX_AGE 60
    if [ "$WITH_DATABASE" -eq 1 ] && ! grep -q '^DATABASE_URL=' "$env_file"; then
        env_add_missing "$env_file" DATABASE_URL "postgres://pdas_app:$(new_secret)@127.0.0.1:$PG_PORT/pdas"
    fi
    if [ "$WITH_DATABASE" -eq 1 ] && [ ! -f "$CONF/database-owner.env" ]; then
        install -m 0600 -o root -g root /dev/null "$CONF/database-owner.env"
        {
            echo "# The database owner: deploy/install, deploy/upgrade and pdas-manage --owner (migrate) only."
            echo "DATABASE_URL=postgres://pdas_owner:$(new_secret)@127.0.0.1:$PG_PORT/pdas"
        } >>"$CONF/database-owner.env"
        note "$CONF/database-owner.env: made"
    fi
    if [ "$WITH_REDIS" -eq 1 ]; then
        env_add_missing "$env_file" CELERY_BROKER_URL "redis://:$(new_secret)@127.0.0.1:6379/0"
        env_add_missing_cache_url "$env_file"
    fi
    [ -f "$CONF/site.toml.example" ] || install -m 0640 -o root -g "$SERVICE_USER" \
        "$PDAS_SOURCE_DIR/deploy/site.toml.example" "$CONF/site.toml.example"
}

env_add_missing_cache_url() {
    # The web processes' shared cache (pdas/caches.py): the broker's Redis and password, another database,
    # so the processes count the figures over every archive once between them (docs/operations.md, "Sizing").
    local file="$1" broker database
    broker="$(env_value "$file" CELERY_BROKER_URL)"
    case "$broker" in
        redis://*/[0-9] | redis://*/[0-9][0-9] | rediss://*/[0-9] | rediss://*/[0-9][0-9]) ;;
        *) return 0 ;;  # a broker of the administrator's own, without a database number: theirs to set
    esac
    database=1
    [ "${broker##*/}" != 1 ] || database=2
    env_add_missing "$file" PDAS_CACHE_URL "${broker%/*}/$database"
}

url_password() {
    # The password of a URL scheme://user:password@host... (PDAS's generated ones are URL-safe).
    sed -n 's|^[a-z]*://[^:/@]*:\([^@]*\)@.*|\1|p' <<<"$1"
}

# --- the wrapper ----------------------------------------------------------------------------------

install_wrapper() {
    local wrapper="$PREFIX/bin/pdas-manage" new
    new="$(mktemp)"
    PDAS_CLEANUP+=("$new")
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@CONF@|$CONF|g" -e "s|@DATA@|$DATA|g" -e "s|@USER@|$SERVICE_USER|g" \
        "$PDAS_SOURCE_DIR/deploy/pdas-manage.in" >"$new"
    write_if_changed "$new" "$wrapper" 0755 || true  # unchanged: nothing to do
    if [ "$PREFIX" = /opt/pdas ] && [ ! -e /usr/local/sbin/pdas-manage ]; then
        ln -s "$wrapper" /usr/local/sbin/pdas-manage
    fi
}

write_if_changed() {
    # Copies SOURCE to TARGET (with MODE) only when the content differs; says whether it did.
    local source="$1" target="$2" mode="$3"
    if [ -f "$target" ] && cmp -s "$source" "$target"; then
        return 1
    fi
    install -D -m "$mode" -o root -g root "$source" "$target"
    note "$target: written"
    return 0
}

manage() { "$PREFIX/bin/pdas-manage" "$@"; }

# --- PostgreSQL -----------------------------------------------------------------------------------

psql_admin() {
    # psql as the cluster's superuser over the local socket (peer authentication), SQL on stdin.
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -d postgres "$@"
}

ensure_database() {
    [ "$WITH_DATABASE" -eq 1 ] || return 0
    say "PostgreSQL: the pdas database, its owner and the app role"
    runuser -u postgres -- pg_isready -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" \
        || die "PostgreSQL does not answer on $PG_SOCKET_DIR port $PG_PORT (start it: systemctl start postgresql)"
    local owner_password app_password
    owner_password="$(url_password "$(env_value "$CONF/database-owner.env" DATABASE_URL)")"
    app_password="$(url_password "$(env_value "$CONF/pdas.env" DATABASE_URL)")"
    [ -n "$owner_password" ] && [ -n "$app_password" ] || die "$CONF: no database passwords found (DATABASE_URL)"
    # Passwords go through stdin, never a command line. A role that exists keeps its password.
    psql_admin >/dev/null <<SQL
\\set owner_password '$owner_password'
\\set app_password '$app_password'
SELECT format('CREATE ROLE pdas_owner LOGIN PASSWORD %L', :'owner_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pdas_owner') \\gexec
SELECT format('CREATE ROLE pdas_app LOGIN PASSWORD %L', :'app_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pdas_app') \\gexec
SELECT 'CREATE DATABASE pdas OWNER pdas_owner ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'pdas') \\gexec
SQL
}

apply_app_role_grants() {
    [ "$WITH_DATABASE" -eq 1 ] || return 0
    local owner_url
    owner_url="$(env_value "$CONF/database-owner.env" DATABASE_URL)"
    PGPASSWORD="$(url_password "$owner_url")" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" \
        -U pdas_owner -d pdas -f "$PREFIX/current/deploy/postgresql-app-role.sql" >/dev/null
}

migrate() {
    say "Database schema (manage.py migrate, as the owner)"
    if [ "$WITH_DATABASE" -eq 1 ]; then
        manage --owner migrate --noinput -v 0
    else
        manage migrate --noinput -v 0
    fi
    apply_app_role_grants
}

# --- Redis ----------------------------------------------------------------------------------------

ensure_redis() {
    [ "$WITH_REDIS" -eq 1 ] || return 0
    [ -f "$REDIS_CONF" ] || die "$REDIS_CONF not found (is redis-server installed? else --no-redis)"
    local password ours new changed=0
    password="$(url_password "$(env_value "$CONF/pdas.env" CELERY_BROKER_URL)")"
    [ -n "$password" ] || die "$CONF/pdas.env: CELERY_BROKER_URL has no password"
    ours="$(dirname "$REDIS_CONF")/redis-pdas.conf"
    new="$(mktemp)"
    PDAS_CLEANUP+=("$new")
    cat >"$new" <<EOF
# PDAS (deploy/install): Redis on loopback only, with a password (the one in $CONF/pdas.env).
bind 127.0.0.1 -::1
protected-mode yes
port 6379
requirepass $password
EOF
    if write_if_changed "$new" "$ours" 0640; then changed=1; fi
    if getent group redis >/dev/null; then chgrp redis "$ours"; fi
    if ! grep -qxF "include $ours" "$REDIS_CONF"; then
        # Last in the file: its bind and password win over what comes before.
        printf '\n# PDAS: loopback and a password (deploy/install)\ninclude %s\n' "$ours" >>"$REDIS_CONF"
        note "$REDIS_CONF: includes $ours"
        changed=1
    fi
    if [ "$changed" -eq 1 ] && systemd_running; then systemctl restart redis-server; fi
}

# --- TLS and nginx --------------------------------------------------------------------------------

ensure_tls() {
    if [ ! -f "$CONF/tls/pdas.crt" ]; then
        bash "$PREFIX/current/deploy/selfsigned-cert.sh" --dir "$CONF/tls" "$HOST_NAME" >&2
        cat >&2 <<EOF

    !!! A SELF-SIGNED certificate was made for $HOST_NAME ($CONF/tls/pdas.crt).
    !!! Every browser will warn about it. Put the hospital's certificate and key in its place
    !!! before users log in (docs/operations.md, "TLS and the reverse proxy").

EOF
    fi
}

ensure_nginx() {
    [ "$WITH_NGINX" -eq 1 ] || return 0
    local new changed=0
    new="$(mktemp)"
    PDAS_CLEANUP+=("$new")
    sed -e "s|pdas\.hospital\.example|$HOST_NAME|g" -e "s|/etc/pdas/tls/|$CONF/tls/|g" \
        "$PREFIX/current/deploy/nginx/pdas.conf" >"$new"
    if write_if_changed "$new" "$NGINX_DIR/sites-available/pdas" 0644; then changed=1; fi
    if [ ! -L "$NGINX_DIR/sites-enabled/pdas" ]; then
        mkdir -p "$NGINX_DIR/sites-enabled"
        ln -sfn "$NGINX_DIR/sites-available/pdas" "$NGINX_DIR/sites-enabled/pdas"
        changed=1
    fi
    # Debian's welcome site would answer for any other name on port 80; only its own link is removed.
    if [ "$(readlink "$NGINX_DIR/sites-enabled/default" 2>/dev/null)" = "$NGINX_DIR/sites-available/default" ]; then
        rm -f "$NGINX_DIR/sites-enabled/default"
        note "$NGINX_DIR/sites-enabled/default: removed (Debian's welcome page)"
        changed=1
    fi
    if [ "$changed" -eq 1 ] && [ "$NGINX_DIR" = /etc/nginx ]; then
        nginx -t -q || die "nginx -t refused the configuration (see above)"
        if systemd_running; then systemctl reload-or-restart nginx; fi
    fi
}

# --- systemd --------------------------------------------------------------------------------------

systemd_running() { [ -d /run/systemd/system ] && [ "$SYSTEMD_DIR" = /etc/systemd/system ]; }

SERVER_UNITS=(pdas.target pdas-web.service pdas-worker.service pdas-beat.service)

install_units() {
    local unit new changed=0
    for unit in "$PREFIX/current/deploy/systemd/"*; do
        new="$(mktemp)"
        PDAS_CLEANUP+=("$new")
        sed -e "s|/opt/pdas/|$PREFIX/|g" -e "s|/etc/pdas/|$CONF/|g" -e "s|/var/lib/pdas|$DATA|g" \
            -e "s|^User=pdas$|User=$SERVICE_USER|" -e "s|^Group=pdas$|Group=$SERVICE_USER|" "$unit" >"$new"
        if write_if_changed "$new" "$SYSTEMD_DIR/$(basename "$unit")" 0644; then changed=1; fi
    done
    if systemd_running; then
        [ "$changed" -eq 0 ] || systemctl daemon-reload
        systemctl enable --quiet "${SERVER_UNITS[@]}"
    fi
}

stop_services() {
    if systemd_running; then
        say "Stopping the PDAS services"
        systemctl stop pdas.target
    else
        note "systemd is not running here: stop the PDAS services yourself before going on"
    fi
}

start_services() {
    [ "$START" -eq 1 ] || { note "--no-start: the services were not started"; return 0; }
    if systemd_running; then
        say "Starting the PDAS services"
        systemctl start "${SERVER_UNITS[@]}"
    else
        note "systemd is not running here: start the units' commands yourself ($SYSTEMD_DIR/pdas-*.service)"
    fi
}
