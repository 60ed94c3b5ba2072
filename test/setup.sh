#!/bin/bash
# Installs what the test suite needs. As root it uses apt-get; otherwise it
# only reports what is missing (tests needing it then skip, saying why).
set -eu
packages=(
  mandos mandos-client gnutls-bin gnupg dbus avahi-daemon avahi-utils
  iproute2 cryptsetup-bin systemd mandoc dracut-core kmod cpio linux-image-amd64 tmux
  qemu-system-x86 e2fsprogs openssh-server openssh-client openssl dpkg-dev zstd binutils elfutils
  etcd-server etcd-client prometheus lintian debhelper fakeroot
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test/setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # --no-install-recommends: dracut-core must not pull in dracut, which
    # would remove initramfs-tools.
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test/setup.sh: not root; missing packages (tests needing them skip): ${missing[*]}"
  fi
fi
