# Installs what the repo needs and builds it. Sourced by start.sh and test.sh.
# Checks Node, installs pnpm when missing (with npm), installs dependencies, builds.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v node >/dev/null 2>&1 || die "node not found: install Node.js 20.19 or newer (https://nodejs.org)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  die "Node.js $(node -v) is too old: this repo needs 20.19 or newer"
PNPM_VERSION=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm -v 2>/dev/null)" != "$PNPM_VERSION" ]; then
  command -v npm >/dev/null 2>&1 || die "npm not found: it installs pnpm"
  say "installing pnpm $PNPM_VERSION with npm"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || die "npm install -g pnpm@$PNPM_VERSION failed"
fi
say "installing dependencies"
pnpm install --frozen-lockfile --reporter=append-only 2>&1 | grep -vE '^(Progress|Packages:)' | tail -n 5
say "building"
pnpm run --silent build >/dev/null
