#!/usr/bin/env bash
# Install the system programs smartqueue's stack and tests need, when missing.
# Usage: scripts/ensure-system-deps.sh redis-server nginx chromium promtool ...
set -euo pipefail

declare -A PACKAGE=([systemd-analyze]=systemd [redis-server]=redis-server [redis-cli]=redis-tools [nginx]=nginx
                    [chromium]=chromium [promtool]=prometheus)
missing=()
for program in "$@"; do
  if ! command -v "$program" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$program" ]; then
    missing+=("${PACKAGE[$program]:-$program}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "smartqueue needs: ${missing[*]} - install with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start system services; smartqueue runs its own instances on other ports.
for service in redis-server nginx prometheus; do
  service "$service" stop >/dev/null 2>&1 || true
done
