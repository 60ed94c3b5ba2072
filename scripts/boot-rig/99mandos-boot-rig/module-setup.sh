#!/bin/bash
# dracut module "mandos-boot-rig": test-only additions for the boot test
# and benchmark (test/boot/, bench/boot.ts, test/helpers/boot.ts).  Never
# part of a real initramfs.
#
# It adds observers, and one optional delay, nothing that takes part in
# unlocking:
#   - always: the first password question's appearance is marked on the
#     console (systemd starting mandos-boot-rig-question.service), so that
#     "question -> unlocked" means the same in every image compared;
#   - with "mandos_boot_rig.probe" on the kernel command line, a unit
#     prints every few seconds the pending password questions
#     (systemd-tty-ask-password-agent --list) and the credentials (uids,
#     capability sets, NoNewPrivs from /proc/PID/status) of the running
#     Mandos client, framed by markers the test looks for.  This shows,
#     from inside the guest, that systemd's own question is still pending
#     when the Mandos agent could not answer it, and what privileges the
#     process that parses the network has;
#   - with "mandos_boot_rig.wait_for_hold", the switch to the root waits
#     until the agent says it holds the secret (for a root that needs
#     no password, where nothing else would wait for it).

# shellcheck disable=SC2154 # dracut sets initdir, systemdsystemunitdir...

check() {
    return 255 # only when asked for (--add mandos-boot-rig)
}

depends() {
    echo systemd
}

install() {
    inst_multiple bash sleep sed grep true journalctl systemd-tty-ask-password-agent
    inst_script "$moddir/mandos-boot-rig-probe.sh" /usr/bin/mandos-boot-rig-probe
    inst_script "$moddir/mandos-boot-rig-wait-for-hold.sh" /usr/bin/mandos-boot-rig-wait-for-hold
    local unit
    for unit in mandos-boot-rig-probe.service mandos-boot-rig-question.path mandos-boot-rig-question.service \
        mandos-boot-rig-wait-for-hold.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
    done
    $SYSTEMCTL -q --root "$initdir" enable mandos-boot-rig-probe.service mandos-boot-rig-question.path \
        mandos-boot-rig-wait-for-hold.service
}
