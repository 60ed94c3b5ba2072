#!/bin/sh
# Test-only (see module-setup.sh): print the pending password questions
# to the console every few seconds, between markers the boot test parses.
# Each block starts with the uptime, so the test can tell how long the
# question has been pending.
interval=${1:-5}
while :; do
    read -r uptime _ < /proc/uptime
    {
        echo "MANDOS-BOOT-RIG: pending questions at ${uptime} s:"
        systemd-tty-ask-password-agent --list 2>&1 | sed 's/^/MANDOS-BOOT-RIG:   /'
        echo "MANDOS-BOOT-RIG: end of list"
    } > /dev/console
    sleep "$interval"
done
