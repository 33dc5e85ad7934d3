#!/bin/sh
# Makes the stack's secrets once, on the first `docker compose up`, into the
# directory given (a volume). Later starts keep them: the database volume was
# initialised with this password.
set -eu
dir=$1
umask 077
for name in db_password worker_db_password web_db_password auditor_db_password secret_key; do
    if [ ! -s "$dir/$name" ]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/$name.tmp"
        mv "$dir/$name.tmp" "$dir/$name"
    fi
    # Read by the postgres user in db and by the unprivileged app user in the
    # other containers (which all run as uid 10001, so no finer split is possible here).
    chmod 0444 "$dir/$name"
done
