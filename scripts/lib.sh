# Shell helpers shared by the scripts in this folder (sourced, never run).
#   say MESSAGE…          prints "[$SAY_PREFIX] MESSAGE" (prefix default: ripple)
#   die MESSAGE…          prints "[$SAY_PREFIX] ERROR: MESSAGE" to stderr, exits $DIE_STATUS (default 1)
#   apt_install WHY PKG [apt-get install options…]
#                         installs the Debian package PKG with apt-get (as root, or with sudo -n),
#                         refreshing the package lists only when the first attempt fails; dies
#                         with a message naming PKG and WHY when there is no apt-get or no root.
say() { printf '[%s] %s\n' "${SAY_PREFIX:-ripple}" "$*"; }
die() {
  printf '[%s] ERROR: %s\n' "${SAY_PREFIX:-ripple}" "$*" >&2
  exit "${DIE_STATUS:-1}"
}
apt_install() {
  local why=$1 package=$2 as_root=""
  shift 2
  command -v apt-get >/dev/null 2>&1 ||
    die "$why needs the Debian package $package and there is no apt-get: install it by hand"
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  say "installing $package with apt-get ($why)"
  {
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq "$@" "$package" ||
      { $as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq "$@" "$package"; }
  } >/dev/null 2>&1 || die "could not install the Debian package $package with apt-get (it needs root or passwordless sudo and a reachable Debian mirror): $why needs it; install it by hand"
}
