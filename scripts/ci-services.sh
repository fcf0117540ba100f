#!/usr/bin/env bash
# Start the real services the test suite needs, on a fresh Debian 12 machine as root.
#
#   bash scripts/ci-services.sh [ENV_FILE]
#
# Installs PostgreSQL and gnome-keyring (a real D-Bus Secret Service), starts a
# throw-away PostgreSQL server on 127.0.0.1 and writes
#     export AGENTCTL_TEST_POSTGRES_URL=postgresql://...
# to ENV_FILE (mode 0600; `. ENV_FILE` picks it up). The URL holds the password,
# so with ENV_FILE nothing prints it (CI logs are widely readable); without
# ENV_FILE the line goes to stdout for `eval "$(bash scripts/ci-services.sh)"`.
#
# Idempotent: a second run reuses the running server and its credentials.
# The server is private to CI: its own data directory (not the distribution's
# "main" cluster, which may be absent, stopped or configured differently), a
# free port, password (scram) authentication for TCP, durability switched off.
#
# The Secret Service tests need a session bus and an unlocked keyring. A fresh
# XDG_DATA_HOME gives gnome-keyring a new "login" keyring created with (and
# unlocked by) the password on stdin; an old one with another password would
# stay locked. Run them as
#     XDG_DATA_HOME="$(mktemp -d)" dbus-run-session -- bash -c \
#         'echo -n ci-keyring | gnome-keyring-daemon --unlock --components=secrets >/dev/null \
#          && .venv/bin/pytest -m secret_service tests'
set -euo pipefail

ENV_FILE="${1:-}"
BASE="${AGENTCTL_CI_PG_BASE:-/tmp/agentctl-ci-postgres}"
PGDATA="$BASE/data"
SOCKET_DIR="$BASE/socket"
CREDENTIALS="$BASE/credentials.env"
DB_NAME="agentctl_test"
DB_USER="agentctl"

log() { echo "ci-services: $*" >&2; }

need_packages=()
command -v dbus-run-session >/dev/null || need_packages+=(dbus dbus-bin)
command -v gnome-keyring-daemon >/dev/null || need_packages+=(gnome-keyring)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_packages+=(postgresql)
# The README's request-signing recipe is run by a test (tests/test_serve.py).
command -v curl >/dev/null || need_packages+=(curl)
command -v openssl >/dev/null || need_packages+=(openssl)
# `make test` and the AWS CLI's venv need `python3 -m venv` (Debian splits it out).
python3 -c 'import ensurepip' 2>/dev/null || need_packages+=(python3-venv)
if ((${#need_packages[@]})); then
    log "installing ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >&2
fi

# The AWS CLI (tests/test_credential_process.py drives it through a
# credential_process profile). In its own venv: awscli pins botocore exactly,
# which must not move the project's boto3/botocore. Optional: that one test
# skips without `aws`, so a failed install (no python3-venv, PyPI unreachable)
# is reported and CI goes on; a half-made venv is removed, never put on PATH.
AWSCLI_VENV="${AGENTCTL_CI_AWSCLI_VENV:-/opt/awscli}"
install_awscli() {
    # Called in an `if`: set -e is off in here, hence the explicit && chain.
    python3 -m venv "$AWSCLI_VENV" >&2 &&
        PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$AWSCLI_VENV/bin/pip" install -q --timeout 60 awscli >&2 &&
        "$AWSCLI_VENV/bin/aws" --version >&2 &&
        ln -sf "$AWSCLI_VENV/bin/aws" /usr/local/bin/aws
}
# A failed attempt is remembered, so that the reruns (tests/test_hostile_input.py
# runs this script again) stay quick instead of retrying PyPI each time.
AWSCLI_FAILED="$AWSCLI_VENV.install-failed"
if command -v aws >/dev/null; then
    :
elif [[ -e "$AWSCLI_FAILED" ]]; then
    log "no AWS CLI: its install failed earlier (remove $AWSCLI_FAILED to try again);" \
        "tests/test_credential_process.py skips its aws CLI test"
else
    log "installing the AWS CLI (awscli, own venv in $AWSCLI_VENV)"
    if ! install_awscli </dev/null; then
        rm -rf "$AWSCLI_VENV"
        touch "$AWSCLI_FAILED" || true
        log "WARNING: could not install the AWS CLI (see the lines above); going on without" \
            "it: tests/test_credential_process.py skips its aws CLI test. To run it, install" \
            "awscli so that \`aws\` is on PATH."
    fi
fi

# The newest installed major version; Debian keeps the binaries off PATH.
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
as_postgres() { runuser -u postgres -- "$@"; }

mkdir -p "$BASE"
chown postgres:postgres "$BASE"
chmod 0700 "$BASE"

if [[ ! -f "$CREDENTIALS" ]]; then
    # Keep the password out of the process list: initdb reads it from a file.
    password="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    pwfile="$(mktemp)"
    printf '%s\n' "$password" >"$pwfile"
    chown postgres "$pwfile"
    rm -rf "$PGDATA"
    as_postgres "$PG_BIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 >&2
    rm -f "$pwfile"
    (umask 077 && printf 'PG_PORT=0\nPG_PASSWORD=%s\n' "$password" >"$CREDENTIALS")
fi
# shellcheck source=/dev/null
. "$CREDENTIALS"

port_free() { python3 -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
mkdir -p "$SOCKET_DIR"
chown postgres:postgres "$SOCKET_DIR"
if ! as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    # A server left stopped by an earlier run restarts on its old port unless
    # something else took it meanwhile.
    if [[ "$PG_PORT" == 0 ]] || ! port_free "$PG_PORT"; then
        PG_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        (umask 077 && printf 'PG_PORT=%s\nPG_PASSWORD=%s\n' "$PG_PORT" "$PG_PASSWORD" >"$CREDENTIALS")
    fi
    log "starting PostgreSQL ($("$PG_BIN/postgres" --version)) on 127.0.0.1:$PG_PORT"
    as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$BASE/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $SOCKET_DIR -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2
fi

psql_admin() { as_postgres "$PG_BIN/psql" -h "$SOCKET_DIR" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [[ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]]; then
    # On stdin, not in psql's arguments: those are in the process list.
    psql_admin -f - <<<"CREATE ROLE $DB_USER LOGIN PASSWORD '$PG_PASSWORD'"
fi
# CREATEROLE: tests make a role that may only read the state (a throwaway server).
psql_admin -c "ALTER ROLE $DB_USER CREATEROLE"
if [[ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
fi

# The URL holds the password: it goes to ENV_FILE (mode 0600), never into the
# CI log. Without ENV_FILE it is printed for `eval "$(bash scripts/ci-services.sh)"`.
url="postgresql://$DB_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME"
line="export AGENTCTL_TEST_POSTGRES_URL=$url"
if [[ -n "$ENV_FILE" ]]; then
    (umask 077 && printf '%s\n' "$line" >"$ENV_FILE")
    log "wrote AGENTCTL_TEST_POSTGRES_URL (postgresql://$DB_USER:***@127.0.0.1:$PG_PORT/$DB_NAME) to $ENV_FILE"
else
    echo "$line"
fi
