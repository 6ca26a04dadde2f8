#!/usr/bin/env bash
# Debian packages the benchmarks drive (nginx as the canned backend, wrk as the load generator; the
# smoke test in `make test` runs them at a tiny size) and stress-ng, which keeps the cores busy while
# `make stress` runs the suite: installed from Debian once, when missing.
# Needs root or passwordless sudo, as any apt install does.
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v stress-ng >/dev/null || missing+=(stress-ng)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} from Debian (first run only) ..."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
