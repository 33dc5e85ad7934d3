#!/bin/sh
# Makes the stack's secrets once, on the first `docker compose up`, and gives
# each service only its own, in a volume of its own mounted under the
# directory given:
#   db/       db_password                              postgres (uid 999)
#   migrate/  db_password, worker_db_password,          the apps' user (10001):
#             web_db_password, auditor_db_password      it sets every role's password
#   worker/   worker_db_password                       10001
#   web/      web_db_password, secret_key              10001
# Every file is mode 0400, owned by the uid that reads it, so a compromised
# web process cannot read the owner's or the auditor's password.
# Later starts keep the values (the database volume was initialised with
# them), also from earlier/, the single volume of earlier versions, whose
# world-readable copies of every password are deleted once carried over.
set -eu
dir=$1
umask 077

# The value of a secret: kept from its first home, or from earlier/, or new.
value() {
    for f in "$dir/$2/$1" "$dir/earlier/$1"; do
        if [ -s "$f" ]; then cat "$f"; return; fi
    done
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# put NAME HOME-DIR UID DIR...: the secret into each directory, readable only by UID.
put() {
    name=$1 home=$2 uid=$3
    shift 3
    secret=$(value "$name" "$home")
    for d in "$@"; do
        printf '%s' "$secret" >"$dir/$d/$name.tmp"
        chown "$uid:$uid" "$dir/$d/$name.tmp"
        chmod 0400 "$dir/$d/$name.tmp"
        mv "$dir/$d/$name.tmp" "$dir/$d/$name"
    done
}

# migrate/ first: it is the home the others are copied from.
put db_password migrate 10001 migrate
put db_password migrate 999 db
put worker_db_password migrate 10001 migrate worker
put web_db_password migrate 10001 migrate web
put auditor_db_password migrate 10001 migrate
put secret_key web 10001 web

# Carried over: the old volume keeps no copy.  On disk first, so a crash
# cannot lose both copies.
if [ -d "$dir/earlier" ]; then
    sync
    find "$dir/earlier" -mindepth 1 -delete
fi
