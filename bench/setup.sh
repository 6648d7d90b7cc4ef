#!/usr/bin/env bash
# Installs the peers the benchmarks compare against, from Debian's packages, and
# what the detection comparison counts bytes with (nftables) and the slow-disk
# run slows an agent's fsyncs with (strace). Builds
# bench/serf-probe (serf's agent with edge-agent's probe interval) from Debian's
# serf sources. The peers are started by the benchmarks themselves, on 127.0.0.1
# only. Never assumed.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
need=()
command -v serf >/dev/null 2>&1 || need+=(serf)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v strace >/dev/null 2>&1 || need+=(strace)
probe="$here/serf-probe/bin/serf-probe"
if [ ! -x "$probe" ]; then
  command -v go >/dev/null 2>&1 || need+=(golang-go)
  [ -d /usr/share/gocode/src/github.com/hashicorp/serf/cmd/serf/command/agent ] || need+=(golang-github-hashicorp-serf-dev)
fi
if [ "$(id -u)" != 0 ]; then
  [ ${#need[@]} -eq 0 ] || echo "bench/setup.sh: missing ${need[*]} and not root; those comparisons will be skipped" >&2
  exit 0
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "bench/setup.sh: installing ${need[*]} from Debian" >&2
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || echo "bench/setup.sh: could not install ${need[*]}" >&2
fi
if [ ! -x "$probe" ] && command -v go >/dev/null 2>&1; then
  echo "bench/setup.sh: building bench/serf-probe from Debian's serf sources" >&2
  mkdir -p "$here/serf-probe/bin"
  (cd "$here/serf-probe" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$here/serf-probe/bin/.cache" go build -o "$probe" main.go) \
    || echo "bench/setup.sh: could not build bench/serf-probe; serf at edge-agent's probe interval will be skipped" >&2
  rm -rf "$here/serf-probe/bin/.cache"
fi
exit 0
