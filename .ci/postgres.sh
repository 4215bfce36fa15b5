# shellcheck shell=bash
# Sourced by .ci/run (as root, on Debian): install and start a PostgreSQL server for the
# database tests, then export NEUROTRIAGE_TEST_DATABASE_URL. Idempotent: a second run reuses the
# installed server, the running cluster, the role and the database.
#
# initdb/pg_ctl refuse to run as root and Debian keeps pg_ctl off PATH, so the cluster is made and
# started with Debian's wrappers (pg_createcluster, pg_ctlcluster), which run it as `postgres`.
# Everything lives in one function so the caller's `set -e` aborts CI on a real failure, while the
# commands allowed to fail are tested with `if`.

_neurotriage_pg_setup() {
  local role=neurotriage password=neurotriage database=neurotriage_test version port
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "postgres.sh: installing PostgreSQL from Debian packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
    pg_createcluster "$version" main >/dev/null
  fi
  if ! pg_ctlcluster "$version" main status >/dev/null 2>&1; then
    pg_ctlcluster "$version" main start
  fi
  port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')
  local tries=0
  until pg_isready -q -h localhost -p "$port"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
      echo "postgres.sh: PostgreSQL $version did not become ready on port $port" >&2
      return 1
    fi
    sleep 1
  done
  runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 -c "
    DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
        CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password';
      END IF;
    END \$\$;"
  if [ "$(runuser -u postgres -- psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'")" != "1" ]; then
    runuser -u postgres -- createdb -p "$port" -O "$role" "$database"
  fi
  export NEUROTRIAGE_TEST_DATABASE_URL="postgresql+psycopg://$role:$password@localhost:$port/$database"
  echo "postgres.sh: PostgreSQL $version ready, NEUROTRIAGE_TEST_DATABASE_URL=postgresql+psycopg://$role:***@localhost:$port/$database"
}

_neurotriage_pg_setup
unset -f _neurotriage_pg_setup
