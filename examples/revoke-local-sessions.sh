#!/bin/sh
# revoke-local-sessions.sh: an ssfd command sink that ends every login session of the local
# user a revocation names, via systemd-logind.
#
# ssfd runs it with the action document on stdin and these variables set:
#   SSFD_LOCAL_USER       the local user ([identity] map_file or rule); empty when unknown
#   SSFD_SUBJECT          the subject's first canonical key, e.g. email:alice@example.com
#   SSFD_EVENT_TYPE       the event type URI
#   SSFD_IDEMPOTENCY_KEY  streamId:jti:eventType, the same on every attempt
#
# Configuration (receiver.toml):
#
#   [identity]
#   rule = "email_local_part"            # alice@example.com -> alice
#
#   [[sink]]
#   type = "command"
#   name = "local-sessions"
#   argv = ["/usr/local/libexec/ssfd/revoke-local-sessions.sh"]
#   timeout = "10s"
#   events = ["session-revoked", "credential-change", "account-disabled"]
#
# Exit status (ssfd retries any non-zero status with back-off, then marks the action dead):
#   0  sessions terminated, or the user has none (nothing left to revoke)
#   2  refused: no local user, root, a system account, or a name that is not a plain user name
#   3  the user does not exist on this host
#   4  loginctl failed (logind unavailable, permission denied)
#
# The refusals (2, 3) do not get better with retries; they end in the visible dead state, which
# is where an operator should look at them. ssfd needs the right to terminate users' sessions,
# e.g. a polkit rule for org.freedesktop.login1.manage, or running as root.

set -u

# The document on stdin is not needed here; read it so ssfd never sees a broken pipe.
cat >/dev/null

user="${SSFD_LOCAL_USER:-}"
key="${SSFD_IDEMPOTENCY_KEY:-}"

if [ -z "$user" ]; then
    echo "refusing: no local user for subject '${SSFD_SUBJECT:-}' (configure [identity])" >&2
    exit 2
fi

case "$user" in
    -* | *[!A-Za-z0-9._-]*)
        echo "refusing: '$user' is not a plain user name" >&2
        exit 2
        ;;
esac

if ! uid=$(id -u -- "$user" 2>/dev/null); then
    echo "user '$user' does not exist on this host" >&2
    exit 3
fi

if [ "$uid" -eq 0 ] || [ "$user" = "root" ]; then
    echo "refusing: will not terminate root's sessions" >&2
    exit 2
fi

# Accounts below the first regular uid run services, not people.
min_uid=$(awk '$1 == "UID_MIN" { print $2 }' /etc/login.defs 2>/dev/null)
if [ "$uid" -lt "${min_uid:-1000}" ]; then
    echo "refusing: '$user' (uid $uid) is a system account" >&2
    exit 2
fi

if ! loginctl show-user -- "$user" >/dev/null 2>&1; then
    # Not logged in: there is nothing to terminate, which is what the revocation wants.
    echo "user '$user' has no sessions ($key)"
    exit 0
fi

if ! loginctl terminate-user -- "$user"; then
    echo "loginctl terminate-user failed for '$user' ($key)" >&2
    exit 4
fi

echo "terminated the sessions of '$user' ($key)"
exit 0
