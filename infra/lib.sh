# Shared helpers for the infra scripts. Source it; do not run it.
RIPPLE_HOME="${RIPPLE_HOME:-$HOME/.cache/ripple}"

say() { printf '[infra] %s\n' "$*"; }
die() {
  printf '[infra] ERROR: %s\n' "$*" >&2
  exit 1
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
  return 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND until it succeeds or time runs out.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
  say "$what is up"
}

# host and port of a URL such as redis://127.0.0.1:6379 or postgresql://u@h:5432/db
url_host() { local u=${1#*://}; u=${u#*@}; u=${u%%/*}; printf '%s' "${u%%:*}"; }
url_port() { local u=${1#*://}; u=${u#*@}; u=${u%%/*}; [ "$u" = "${u#*:}" ] && printf '%s' "$2" || printf '%s' "${u#*:}"; }
