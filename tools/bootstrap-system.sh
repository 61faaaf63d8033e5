#!/usr/bin/env bash
# Installs the Debian packages JoyEdge needs, once. Idempotent: does nothing when present.
#   libzbar0            barcode/QR decoding for camera scanners (pyzbar)
#   chromium            the kiosk browser, and the browser the UI tests drive
#   fonts-wqy-microhei  a CJK font, so Chinese is not drawn as boxes
#   dosfstools mtools fdisk  provisioning tests: mkfs.fat, mdir/mcopy, sfdisk build and read back test images
# --no-install-recommends keeps libzbar0 from pulling in ImageMagick.
set -euo pipefail
PKGS=(libzbar0 chromium fonts-wqy-microhei dosfstools mtools fdisk)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
  echo "bootstrap: run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
