#!/bin/sh
# Entrypoint of survey-standin/redis:7, after the official redis image's.
set -e

# first arg is `-f` or `--some-option`, or `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ]; then
	# The official binary is built with protected mode off; Debian's is not.
	# Turn it off, unless a config file comes first (its setting then rules),
	# the arguments set it themselves, or ask for --version/--help/...
	want_pm=yes
	case "${2:-}" in
		''|--*) ;;
		*) want_pm=no ;;   # config file, -v, -h, -
	esac
	for arg; do
		case "$arg" in
			--protected-mode|--version|--help|--test-memory|--check-system) want_pm=no ;;
		esac
	done
	if [ "$want_pm" = yes ]; then
		shift
		set -- redis-server --protected-mode no "$@"
	fi
	# started as root: own the data dir, then re-exec as redis
	if [ "$(id -u)" = '0' ]; then
		find . \! -user redis -exec chown redis '{}' +
		exec gosu redis "$0" "$@"
	fi
fi

# set an appropriate umask (if one isn't set already)
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
