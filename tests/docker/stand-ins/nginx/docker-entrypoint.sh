#!/bin/sh
# Entrypoint of survey-standin/nginx:1.27.  The official image's entrypoint
# runs its /docker-entrypoint.d scripts (envsubst templates and the like) only
# when the command is nginx; any other command, like this project's
# proxy/run, is simply run.  The stand-in has no such scripts.
set -e
exec "$@"
