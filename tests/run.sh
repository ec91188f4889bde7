#!/usr/bin/env bash
# The whole test suite in one command, with its own set-up on a fresh Debian machine:
# installs the media tools the item tests use (ffmpeg/ffprobe, b3sum), makes sure PostgreSQL
# runs (installing or starting it when needed), runs every test against SQLite and PostgreSQL,
# and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${STOWAGE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
started_pg=""

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "tests/run.sh: need $* installed (run as root to install it automatically)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
    command -v pg_isready >/dev/null || apt_install postgresql postgresql-client
    if ! pg_up; then
        local version
        version="$(ls /etc/postgresql | sort -V | tail -n 1)"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        started_pg="$version"
        for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
    fi
    if ! psql "$PG_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
        # A freshly installed server: let local TCP connections in without a password and create
        # the database the tests connect to.
        local hba
        hba="$(su postgres -c "psql -qtAc 'SHOW hba_file'")"
        grep -q '^host all all 127.0.0.1/32 trust' "$hba" || sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        su postgres -c "psql -qtAc 'SELECT pg_reload_conf()'" >/dev/null
        su postgres -c "createdb test" 2>/dev/null || true
    fi
    psql "$PG_URL" -qtAc 'SELECT 1' >/dev/null
}

cleanup() {
    if [ -n "$started_pg" ]; then
        pg_ctlcluster --skip-systemctl-redirect "$started_pg" main stop || true
    fi
}
trap cleanup EXIT

ensure_tools() {
    local missing=()
    command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || missing+=(ffmpeg)
    command -v b3sum >/dev/null || missing+=(b3sum)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

ensure_tools
ensure_postgres
export STOWAGE_TEST_POSTGRES_URL="$PG_URL"
cargo test --locked
