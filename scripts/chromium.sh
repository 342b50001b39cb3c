# Makes sure a Chromium is installed for the browser tests (tests/e2e/src/demo-browser.test.ts
# drives it with playwright-core): Debian's `chromium` package, installed with apt-get when
# missing. Set CHROMIUM_PATH to use a browser installed elsewhere. Sourced by test.sh, after
# bootstrap.sh (which defines say and die).
CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM_PATH" ]; then
  command -v apt-get >/dev/null 2>&1 ||
    die "$CHROMIUM_PATH not found and no apt-get to install it: install Chromium and set CHROMIUM_PATH"
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  say "installing chromium with apt-get (browser tests)"
  { $as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium; } >/dev/null 2>&1 ||
    die "could not install the Debian package chromium with apt-get (root needed): install it, or set CHROMIUM_PATH to a Chromium"
  [ -x "$CHROMIUM_PATH" ] || die "chromium was installed but $CHROMIUM_PATH is missing: set CHROMIUM_PATH"
fi
export CHROMIUM_PATH
