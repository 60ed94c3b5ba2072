#!/bin/bash
# Test-only (see module-setup.sh): every few seconds, print to the console
# the pending password questions and the credentials of every running
# Mandos client process, between markers the boot test parses.  Each
# block starts with the uptime, so the test can tell how long a question
# has been pending and when a process was seen.  Bash, for reading
# NUL-separated command lines without starting a process per process
# (under emulation each fork costs the boot being watched).
interval=${1:-5}

# Is the process with this command line (a /proc/PID/cmdline file) a
# Mandos client?  It is if, before any "--" (after which the agent names
# the client it will run), a word's base name starts with "mandos-client":
# "/lib/mandos/mandos-client ..." (Debian's C client) or
# "node [OPTIONS] /usr/lib/mandos-ts/mandos-client ..." (ours).
is_mandos_client() {
    local word
    while IFS= read -r -d '' word; do
        case $word in
            --) return 1 ;;
            mandos-client* | */mandos-client*) return 0 ;;
        esac
    done 2> /dev/null < "$1"
    return 1
}

while :; do
    read -r uptime _ < /proc/uptime
    {
        echo "MANDOS-BOOT-RIG: pending questions at ${uptime} s:"
        systemd-tty-ask-password-agent --list 2>&1 | sed 's/^/MANDOS-BOOT-RIG:   /'
        echo "MANDOS-BOOT-RIG: end of list"
        for dir in /proc/[0-9]*; do
            is_mandos_client "$dir/cmdline" || continue
            # Read at once: the process may end between two reads.
            status=$(sed -n '/^\(Name\|Uid\|Gid\|CapInh\|CapPrm\|CapEff\|CapAmb\|NoNewPrivs\):/s/^/MANDOS-BOOT-RIG:   /p' \
                "$dir/status" 2> /dev/null) || continue
            [[ -n $status ]] || continue
            echo "MANDOS-BOOT-RIG: process ${dir#/proc/} at ${uptime} s:"
            echo "$status"
            echo "MANDOS-BOOT-RIG: end of process"
        done
    } > /dev/console
    sleep "$interval"
done
