#!/bin/bash
# dracut module "mandos-boot-rig": test-only additions for the boot test
# (test/boot/, test/helpers/boot.ts).  Never part of a real initramfs.
#
# It adds one observer, nothing that takes part in unlocking: with
# "mandos_boot_rig.probe" on the kernel command line, a unit prints the
# pending password questions (systemd-tty-ask-password-agent --list)
# every few seconds to the console, framed by markers the test looks
# for.  This shows, from inside the guest, that systemd's own question
# is still pending when the Mandos agent could not answer it.

# shellcheck disable=SC2154 # dracut sets initdir, systemdsystemunitdir...

check() {
    return 255 # only when asked for (--add mandos-boot-rig)
}

depends() {
    echo systemd
}

install() {
    inst_multiple sleep sed systemd-tty-ask-password-agent
    inst_script "$moddir/mandos-boot-rig-probe.sh" /usr/bin/mandos-boot-rig-probe
    inst_simple "$moddir/mandos-boot-rig-probe.service" \
        "$systemdsystemunitdir/mandos-boot-rig-probe.service"
    $SYSTEMCTL -q --root "$initdir" enable mandos-boot-rig-probe.service
}
