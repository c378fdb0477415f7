#!/usr/bin/env bash
# Installs what the project needs from Debian (only what is missing) and builds the release binary.
# Usage: launch/setup.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libopenblas-dev libdnnl-dev libopenmpi-dev openmpi-bin zlib1g-dev libpng-dev libturbojpeg0-dev pkg-config iproute2 dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}"
fi

if ! command -v swift >/dev/null; then
    echo "setup: swift is not on PATH; install Swift 6 (https://www.swift.org/install) and try again." >&2
    exit 1
fi
swift build -c release --product abn
echo "setup: built $(pwd)/.build/release/abn"
