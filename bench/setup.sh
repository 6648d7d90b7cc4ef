#!/usr/bin/env bash
# Installs the peers the benchmarks compare against, from Debian's packages. They
# are started by the benchmarks themselves, on 127.0.0.1 only. Never assumed.
set -uo pipefail
need=()
command -v serf >/dev/null 2>&1 || need+=(serf)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "bench/setup.sh: missing ${need[*]} and not root; those comparisons will be skipped" >&2
  exit 0
fi
echo "bench/setup.sh: installing ${need[*]} from Debian" >&2
apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || echo "bench/setup.sh: could not install ${need[*]}" >&2
