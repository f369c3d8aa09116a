#!/usr/bin/env bash
# Installs the Debian packages shouwen needs to build, test and run, with
# sudo when not root.  A fast no-op when everything is already there: one
# dpkg-query, no network.
set -euo pipefail

packages=(
    # build
    gcc make pkg-config
    libnng-dev nng-utils libprotobuf-c-dev protobuf-c-compiler libpq-dev
    libcurl4-openssl-dev libjansson-dev libmbedtls-dev
    # database
    postgresql postgresql-contrib
    # time zones (escalation's working-day calendars read the IANA database)
    tzdata
    # tests and checks
    libcmocka-dev valgrind curl bc python3 python3-yaml clang-format clang-tidy cppcheck
    protobuf-compiler
    # notification tests: a real SMTP server (aiosmtpd, run by Debian's /usr/bin/python3),
    # and openssl for its certificate (STARTTLS, SMTPS)
    python3-aiosmtpd openssl
    # make test-fuzz: clang and its runtimes (libFuzzer, ASan, UBSan), only recommended by
    # clang and installed here without recommends; libclang-rt-dev follows the default clang
    # (libclang-rt-14-dev on bookworm)
    clang libclang-rt-dev
    # make test-browser: Debian's Chromium, driven by playwright-core (tests/browser), and
    # a font with Chinese glyphs for its screenshots
    chromium fonts-wqy-microhei
    # make run REPLICAS=2 and make test-ops: HAProxy in front of two intakes
    haproxy
)
# node and npm run the browser tests; Debian's packages only for what is not
# on PATH already (a nodejs from elsewhere, nodesource's say, bundles its own
# npm, and Debian's npm package would conflict with it)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
status=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null || true)
for p in "${packages[@]}"; do
    if ! grep -qE "^${p} ii" <<<"$status"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "bootstrap: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    # ask for a password at a terminal; never hang waiting for one in CI
    if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
fi
export DEBIAN_FRONTEND=noninteractive
# The Debian postgresql package would create and start a system cluster we
# do not use; shouwen runs its own private one under .run/pg.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    "${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" |
        "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/shouwen.conf >/dev/null
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "bootstrap: done"
