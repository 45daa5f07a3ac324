#!/bin/sh
# grafana/admin-password.sh: Grafana's entrypoint in the lab (compose's
# `entrypoint`, the Kubernetes pod's `command`), run by the image's sh before
# the image's own /run.sh. It sets the admin password, so that no lab
# starts with Grafana's admin/admin (docs/design.md §7):
#
# - GF_SECURITY_ADMIN_PASSWORD set (compose: the environment or .env, see
#   .env.example; Kubernetes: the Secret grafana-admin): that one;
# - otherwise one generated at the first start and kept beside Grafana's
#   database, in its data volume, where the README says to read it:
#     docker compose exec grafana cat /var/lib/grafana/admin-password
#
# Grafana applies the password only when it creates its admin user, on a
# fresh data volume; the generated one lives and goes with that volume.
set -eu

data=${GF_PATHS_DATA:-/var/lib/grafana}
kept=$data/admin-password

# Grafana's database exists once it has created its admin user: from then
# on no password given here changes that user's.
created=
[ -e "$data/grafana.db" ] && created=1

if [ -n "${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then
    if [ -n "$created" ]; then
        echo "fiblab: Grafana's admin keeps the password this volume was created with;" \
            "GF_SECURITY_ADMIN_PASSWORD applies to a fresh grafana-data volume" >&2
    else
        echo "fiblab: Grafana's admin password is GF_SECURITY_ADMIN_PASSWORD's" >&2
    fi
elif [ -s "$kept" ]; then
    GF_SECURITY_ADMIN_PASSWORD=$(cat "$kept")
    export GF_SECURITY_ADMIN_PASSWORD
    echo "fiblab: Grafana's admin password was generated at this volume's first start" \
        "(unless changed in Grafana since); read it with: cat $kept" >&2
elif [ -n "$created" ]; then
    # A volume made before the lab generated passwords: whatever it was made
    # with (admin/admin then) stays; announcing a new one would be a lie.
    echo "fiblab: this grafana-data volume was created without a generated password:" \
        "admin keeps the one it was created with; change it in Grafana, or start" \
        "on a fresh volume (docker compose down -v)" >&2
else
    # 18 random bytes: 24 characters of base64, 144 bits.
    (umask 077 && head -c 18 /dev/urandom | base64 >"$kept.new" && mv "$kept.new" "$kept")
    GF_SECURITY_ADMIN_PASSWORD=$(cat "$kept")
    export GF_SECURITY_ADMIN_PASSWORD
    echo "fiblab: Grafana's admin password was generated; read it with: cat $kept" >&2
fi

exec /run.sh "$@"
