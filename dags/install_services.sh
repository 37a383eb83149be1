#!/usr/bin/env bash
# Install the services a real Airflow deployment in the tests needs, if missing (Debian packages):
# redis-server (the Celery broker) and PostgreSQL (the metadata DB and Celery result backend).
# Called by install.sh --dev; safe to re-run. Root only (apt-get): otherwise one line and exit 0,
# and the scheduler tests skip, naming what is missing (tests/dags/scheduler.py).
set -euo pipefail
missing=()
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} = 0 ]; then
  echo "redis-server and postgresql already installed"
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_services.sh: not root with apt-get: install ${missing[*]} yourself; the Airflow scheduler tests skip without them" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
