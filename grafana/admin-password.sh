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

if [ -n "${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then
    echo "fiblab: Grafana's admin password is GF_SECURITY_ADMIN_PASSWORD's" >&2
else
    if [ ! -s "$kept" ]; then
        # 18 random bytes: 24 characters of base64, 144 bits.
        (umask 077 && head -c 18 /dev/urandom | base64 >"$kept.new" && mv "$kept.new" "$kept")
    fi
    GF_SECURITY_ADMIN_PASSWORD=$(cat "$kept")
    export GF_SECURITY_ADMIN_PASSWORD
    echo "fiblab: Grafana's admin password was generated; read it with: cat $kept" >&2
fi

exec /run.sh "$@"
