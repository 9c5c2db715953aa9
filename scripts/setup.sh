#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/packages.txt that are not installed yet.
# Nothing is downloaded when everything is present. Runs apt-get as root, through sudo when not
# root, or, when neither works, says what to install and fails.
#
# EFFML_SKIP_SETUP=1 skips the check (for machines set up by other means).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DEBIAN_FRONTEND=noninteractive

if [ "${EFFML_SKIP_SETUP:-0}" = 1 ]; then
  echo "setup: skipped (EFFML_SKIP_SETUP=1)"
  exit 0
fi

# The package names: packages.txt without comments and blank lines.
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' \
  "$EFFML_ROOT/scripts/packages.txt")

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: dpkg-query not found: this is not Debian; install the equivalents of"
  echo "       scripts/packages.txt yourself (continuing; the build says what is missing)"
  exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#packages[@]} Debian packages are installed"
  exit 0
fi

echo "setup: ${#missing[@]} of ${#packages[@]} Debian packages missing: ${missing[*]}"

# sudo without a password, or with one typed at a terminal; never a prompt nobody can answer.
can_sudo() {
  command -v sudo >/dev/null 2>&1 || return 1
  sudo -n true 2>/dev/null && return 0
  [ -t 0 ] && sudo -v
}

if [ "$(id -u)" -eq 0 ]; then
  as_root=(env DEBIAN_FRONTEND=noninteractive)
elif can_sudo; then
  as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
else
  echo "setup: cannot install them (not root, and sudo is absent or needs a password without a"
  echo "       terminal). Install them as root, then run this again:"
  echo "       apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  exit 1
fi

log=$(new_log setup)
# Waits for another apt or dpkg (unattended upgrades) instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=300)
run_step "$log" "setup: apt-get update" "${as_root[@]}" apt-get "${apt_opts[@]}" update
run_step "$log" "setup: installing ${#missing[@]} package(s) (log: $log)" \
  "${as_root[@]}" apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}"
