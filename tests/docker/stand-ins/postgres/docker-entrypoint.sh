#!/usr/bin/env bash
# Entrypoint of survey-standin/postgres:15: a small re-implementation of the
# official postgres image's docker-entrypoint.sh contract.
#
#   POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE   superuser password; required
#                          unless POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_USER (_FILE)  superuser name (default postgres)
#   POSTGRES_DB (_FILE)    database created at init (default $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS (_FILE), POSTGRES_INITDB_WALDIR   extra initdb args
#   POSTGRES_HOST_AUTH_METHOD   method of the "host all all all" pg_hba line
#                          appended at init (default: password_encryption,
#                          i.e. scram-sha-256)
#   PGDATA                 data directory (default /var/lib/postgresql/data)
#   PGPORT                 port; postgres itself and psql/pg_isready read it,
#                          so with --network host it moves the whole container
#                          (alternatively: CMD args "postgres -c port=5433")
#
# With an empty PGDATA: initdb, pg_hba line, start a temporary server on the
# unix socket only, create POSTGRES_DB, run /docker-entrypoint-initdb.d/*
# (*.sh executed if executable else sourced; *.sql, *.sql.gz, *.sql.xz,
# *.sql.zst fed to psql -v ON_ERROR_STOP=1 as POSTGRES_USER on POSTGRES_DB)
# in sorted order, stop it.  Then (or at once on an existing PGDATA) exec the
# CMD, as user postgres: `postgres` plus any args, which are passed through.
#
# pg_hba.conf: unix-socket connections are "trust" (as in the official
# image); unlike the official image, TCP connections from 127.0.0.1/::1 need
# the password too (scram-sha-256, or POSTGRES_HOST_AUTH_METHOD), because
# with --network host every client connects over loopback.  The official
# "host all all all <method>" line is appended as well.
set -Eeo pipefail

# usage: file_env VAR [DEFAULT] — VAR from $VAR or the file named by $VAR_FILE
file_env() {
	local var="$1" fileVar="${1}_FILE" def="${2:-}"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$fileVar"
		exit 1
	fi
	local val="$def"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!fileVar:-}" ]; then
		val="$(< "${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

docker_setup_env() {
	file_env 'POSTGRES_PASSWORD'
	file_env 'POSTGRES_USER' 'postgres'
	file_env 'POSTGRES_DB' "$POSTGRES_USER"
	file_env 'POSTGRES_INITDB_ARGS'
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	: "${PGDATA:=/var/lib/postgresql/data}"
	export PGDATA
	declare -g DATABASE_ALREADY_EXISTS=
	if [ -s "$PGDATA/PG_VERSION" ]; then
		DATABASE_ALREADY_EXISTS='true'
	fi
}

docker_create_db_directories() {
	local user; user="$(id -u)"
	mkdir -p "$PGDATA"
	# postgres refuses a data directory with group/other access
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		if [ "$user" = '0' ]; then
			find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
		fi
		chmod 700 "$POSTGRES_INITDB_WALDIR"
	fi
	if [ "$user" = '0' ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

docker_verify_minimum_env() {
	if [ "${#POSTGRES_PASSWORD}" -ge 100 ]; then
		echo >&2 'WARNING: POSTGRES_PASSWORD is 100+ characters; psql may truncate it.'
	fi
	if [ -z "$POSTGRES_PASSWORD" ] && [ 'trust' != "$POSTGRES_HOST_AUTH_METHOD" ]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.
		EOE
		exit 1
	fi
	if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
		echo >&2 'WARNING: POSTGRES_HOST_AUTH_METHOD=trust: all connections are trusted.'
	fi
}

docker_init_database_dir() {
	# Unlike the official image (whose initdb leaves 127.0.0.1/::1 on "trust"),
	# TCP from loopback needs the password too: with --network host every
	# client comes from 127.0.0.1, and it should be checked as it would be
	# from another container.  The unix socket stays "trust" (init scripts,
	# pg_isready/psql inside the container).  POSTGRES_INITDB_ARGS, given
	# after these, can still override them.
	local host_auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"  # PG 15 default password_encryption
	local args=(--username="$POSTGRES_USER" --auth-local=trust --auth-host="$host_auth")
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		args+=(--waldir "$POSTGRES_INITDB_WALDIR")
	fi
	# POSTGRES_INITDB_ARGS is word-split like in the official image.  The
	# password goes through a pipe (process substitution), never argv/disk;
	# it must be on the initdb command line itself to stay open for it.
	if [ -n "$POSTGRES_PASSWORD" ]; then
		eval 'initdb "${args[@]}" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"
	else
		eval 'initdb "${args[@]}" '"$POSTGRES_INITDB_ARGS"
	fi
}

pg_setup_hba_conf() {
	if [ "${1:-}" = 'postgres' ]; then shift; fi
	local auth
	auth="$(postgres -C password_encryption "$@")"
	: "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
	{
		printf '\n'
		if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
			printf '# warning trust is enabled for all connections\n'
		fi
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >> "$PGDATA/pg_hba.conf"
}

# psql as POSTGRES_USER on POSTGRES_DB over the unix socket
docker_process_sql() {
	local query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ -n "$POSTGRES_DB" ]; then
		query_runner+=(--dbname "$POSTGRES_DB")
	fi
	PGHOST='' PGHOSTADDR='' "${query_runner[@]}" "$@"
}

docker_temp_server_start() {
	if [ "${1:-}" = 'postgres' ]; then shift; fi
	# unix socket only, so nothing on the (possibly host) network sees it
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER="${PGUSER:-$POSTGRES_USER}" \
		pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

docker_temp_server_stop() {
	PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

# (POSTGRES_DB='' only for psql's --dbname choice; :'db' gets the real name)
# shellcheck disable=SC2097,SC2098
docker_setup_db() {
	local exists
	exists="$(POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db' ;
	EOSQL
	)"
	if [ -z "$exists" ]; then
		POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
		printf '\n'
	fi
}

docker_process_init_files() {
	printf '\n'
	local f
	for f; do
		[ -e "$f" ] || continue
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					printf '%s: running %s\n' "$0" "$f"
					"$f"
				else
					printf '%s: sourcing %s\n' "$0" "$f"
					# shellcheck disable=SC1090
					. "$f"
				fi
				;;
			*.sql)     printf '%s: running %s\n' "$0" "$f"; docker_process_sql -f "$f"; printf '\n' ;;
			*.sql.gz)  printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | docker_process_sql; printf '\n' ;;
			*.sql.xz)  printf '%s: running %s\n' "$0" "$f"; xzcat "$f" | docker_process_sql; printf '\n' ;;
			*.sql.zst) printf '%s: running %s\n' "$0" "$f"; zstd -dc "$f" | docker_process_sql; printf '\n' ;;
			*)         printf '%s: ignoring %s\n' "$0" "$f" ;;
		esac
		printf '\n'
	done
}

# postgres -C/--describe-config/-V/--version/--help only print and exit
_pg_want_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?'|--help|--describe-config|-V|--version) return 0 ;;
		esac
	done
	return 1
}

_main() {
	# first arg is `-f` or `--some-option`: run postgres with them
	if [ "${1:0:1}" = '-' ]; then
		set -- postgres "$@"
	fi

	if [ "$1" = 'postgres' ] && ! _pg_want_help "$@"; then
		docker_setup_env
		docker_create_db_directories
		if [ "$(id -u)" = '0' ]; then
			# re-run this script as postgres
			exec gosu postgres "${BASH_SOURCE[0]}" "$@"
		fi

		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			docker_verify_minimum_env
			# fail early if the init dir is unreadable
			ls /docker-entrypoint-initdb.d/ > /dev/null
			docker_init_database_dir
			pg_setup_hba_conf "$@"
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			docker_temp_server_start "$@"
			docker_setup_db
			docker_process_init_files /docker-entrypoint-initdb.d/*
			docker_temp_server_stop
			unset PGPASSWORD
			printf '\nPostgreSQL init process complete; ready for start up.\n\n'
		else
			printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
		fi
	fi

	exec "$@"
}

_main "$@"
