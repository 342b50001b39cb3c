# Makes sure a Chromium is installed for the browser tests (tests/e2e/src/demo-browser.test.ts
# drives it with playwright-core): Debian's `chromium` package, installed with apt-get when
# missing. Set CHROMIUM_PATH to use a browser installed elsewhere. Sourced by test.sh, after
# bootstrap.sh (which sources lib.sh).
CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM_PATH" ]; then
  apt_install "the browser tests (or set CHROMIUM_PATH to a Chromium)" chromium
  [ -x "$CHROMIUM_PATH" ] || die "chromium was installed but $CHROMIUM_PATH is missing: set CHROMIUM_PATH"
fi
export CHROMIUM_PATH
