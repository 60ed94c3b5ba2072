#!/bin/sh
# Test-only (see module-setup.sh): wait until the Mandos agent says it
# holds the secret, at most $1 seconds, then let the boot go on.
limit=${1:-180}
waited=0
while [ "$waited" -lt "$limit" ]; do
    if journalctl -q -b -o cat -u ask-password-mandos.service 2> /dev/null | grep -q "holding the secret"; then
        exit 0
    fi
    sleep 2
    waited=$((waited + 2))
done
echo "MANDOS-BOOT-RIG: the agent held no secret after ${limit} s" > /dev/console
