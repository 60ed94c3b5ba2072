#!/bin/bash
# dracut module "mandos-ts": the Mandos client and password agent
# (the TypeScript reimplementation) for a systemd initramfs.  dracut
# sources this file and calls check, depends, installkernel and install.
#
# Into the initramfs go: node, fully stripped, and the libraries it
# links; the two programs that run at boot, password-agent and
# mandos-client, each one bundle with its V8 code cache (the installed
# boot/ folder, with koffi's native module for this architecture; no
# node_modules, no sources, no source maps); libgnutls.so.30 and what it
# links (koffi opens it at run time, so dracut would not find it by
# itself); the agent's units and mandos-generator, this host's Mandos
# client keys (readable by user 65534 only), the Mandos network hooks
# with the files and kernel modules they list, and network drivers.
#
# The drivers of this host's network interfaces are also loaded early:
# a file in modules-load.d(5) in the image has systemd-modules-load load
# them at the very start of the initramfs, instead of udev's coldplug,
# which loads them with the disk drivers.  So the network interface
# exists when the agent starts prefetching, and the answer can be there
# before systemd-cryptsetup asks.
#
# Variables (environment or dracut.conf):
#   mandos_ts_sysroot  read the installed files below this directory
#                      instead of /, e.g. a DESTDIR staging tree in
#                      tests; paths inside the initramfs do not change.
#   mandos_ts_early_net_drivers
#                      the kernel modules to load early, separated by
#                      spaces or commas, instead of those found on this
#                      host; list the bus's driver too, e.g.
#                      "virtio_pci virtio_net".  Set but empty: none.
#   mandos_ts_trim_icu  "no": the image's node keeps all of its ICU data
#                      (every locale) instead of English only.

# dracut sets initdir, systemdutildir, systemdsystemunitdir, SYSTEMCTL...
# shellcheck disable=SC2154

# install-system.sh rewrites this line to its PREFIX.
mandos_ts_prefix=/usr

# The password agent runs the client as this user and group (its
# default); the keys in the initramfs belong to them.
mandos_ts_uid=65534
mandos_ts_gid=65534

mandos_ts_libdir() { echo "$mandos_ts_prefix/lib/mandos-ts"; }

# A file of the installed tree as found on the building host.
mandos_ts_source() { echo "${mandos_ts_sysroot:-}$1"; }

mandos_ts_keydir() {
    local dir
    for dir in /etc/keys/mandos /etc/mandos/keys; do
        if [[ -d $dir ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# The node binary the launchers name in their "#!" line.
mandos_ts_node() {
    local line
    read -r line < "$(mandos_ts_source "$(mandos_ts_libdir)")/password-agent" || return 1
    echo "${line#\#!}"
}

# Network hooks follow mandos-client(8mandos): an executable file named
# with letters, digits, "_", "." and "-" only.
mandos_ts_hookdir=/etc/mandos/network-hooks.d
mandos_ts_hooks() { # prints the hooks' paths; with "-x", executable ones only
    local hook name
    for hook in "$mandos_ts_hookdir"/*; do
        name=${hook##*/}
        [[ -e $hook && ! -d $hook ]] || continue
        [[ $name == *[!A-Za-z0-9_.-]* ]] && continue
        [[ $1 == -x && ! -x $hook ]] && continue
        echo "$hook"
    done
}

# Runs a hook in a listing mode ("files" or "modules").
mandos_ts_hook_list() {
    MANDOSNETHOOKDIR=$mandos_ts_hookdir MODE=$2 VERBOSITY=0 "$1" "$2" < /dev/null
}

# dracut only looks for the libraries that executable files link, and
# shared objects are not executable: install a library with everything
# it links (ldd lists them all, not only the direct ones).
mandos_ts_inst_library() { # SOURCE [TARGET]
    local dep
    inst_library "$@" || return 1
    while read -r dep; do
        inst_library "$dep" || return 1
    done < <(ldd "$1" 2> /dev/null | sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p')
}

mandos_ts_find_library() { # NAME: its path in the first of dracut's libdirs holding it
    local dir
    for dir in ${libdirs:-/lib64 /usr/lib64 /lib /usr/lib}; do
        if [[ -e $dir/$1 ]]; then
            echo "$dir/$1"
            return 0
        fi
    done
    return 1
}

# The modules that make this host's physical network interfaces (those
# with a device) appear: the driver of the interface's device and of
# each bound device above it (e.g. virtio_net and virtio_pci), by the
# module sysfs names, or by the driver's name when the running kernel
# has it built in.  SYSFS is /sys except in tests.
mandos_ts_host_net_drivers() { # [SYSFS]
    local sys iface dev driver
    sys=$(realpath -e "${1:-/sys}") || return 0
    for iface in "$sys"/class/net/*; do
        dev=$(realpath -e "$iface/device" 2> /dev/null) || continue
        while [[ $dev == "$sys"/devices/* ]]; do
            if [[ -e $dev/driver/module ]]; then
                driver=$(realpath -e "$dev/driver/module")
                echo "${driver##*/}"
            elif [[ -e $dev/driver ]]; then
                driver=$(realpath -e "$dev/driver")
                driver=${driver##*/}
                echo "${driver//-/_}"
            fi
            dev=${dev%/*}
        done
    done | sort -u
}

# Whether udev renames network interfaces in a host-only image: dracut
# takes the legacy 70-persistent-net.rules along (no .link files).
mandos_ts_renames_interfaces() {
    local dir
    for dir in /etc/udev/rules.d /lib/udev/rules.d /usr/lib/udev/rules.d; do
        [[ -e ${dracutsysrootdir:-}$dir/70-persistent-net.rules ]] && return 0
    done
    return 1
}

# The early network drivers for the image: those named by
# mandos_ts_early_net_drivers if set, else this host's (SYSFS as for
# mandos_ts_host_net_drivers); of them, only loadable modules of the
# kernel being built for (built-in ones need no loading, and one
# systemd-modules-load cannot find would be an error at every boot).
mandos_ts_early_modules() { # [SYSFS]
    local -a drivers
    local driver file
    if [[ -n ${mandos_ts_early_net_drivers+set} ]]; then
        read -r -a drivers <<< "${mandos_ts_early_net_drivers//,/ }"
    elif mandos_ts_renames_interfaces; then
        # The client leaves an interface alone while udev's queue holds
        # it, but one that exists before udev's coldplug is in no queue:
        # the client could bring it up first, and udev could not rename it.
        dinfo "mandos-ts: udev renames network interfaces here (70-persistent-net.rules): network drivers load with udev, not early"
        return 0
    else
        mapfile -t drivers < <(mandos_ts_host_net_drivers "$@")
    fi
    for driver in "${drivers[@]}"; do
        file=$(modinfo -k "$kernel" ${dracutsysrootdir:+-b "$dracutsysrootdir"} -F filename "$driver" 2> /dev/null | head -n 1)
        if [[ -z $file ]]; then
            [[ -n ${mandos_ts_early_net_drivers+set} ]] \
                && dwarning "mandos-ts: module $driver (mandos_ts_early_net_drivers) not found for kernel $kernel; not loaded early"
            continue
        fi
        [[ $file == "(builtin)" ]] || echo "$driver"
    done
}

# The image's node with English-only ICU data (the host's node runs
# dist/src/boot/trim-icu-main.js, which self-tests the result before it
# replaces the file by a rename): node's 33 MB of ICU data for every
# locale become 5.7 MB, 8 MB less with zstd -19, 11 MB with gzip -9, and
# the 27 MB of zero pages left go out of the file (the kernel maps zero
# pages there), so the image unpacks 27 MB less at boot; without section
# headers, dracut's strip step then leaves node alone.
# Nothing at boot uses another locale; if anything fails, node stays as
# it is, with one warning.
mandos_ts_trim_node_icu() { # NODE (the image's copy)
    local tool out
    case ${mandos_ts_trim_icu:-yes} in
        no | false | 0 | off) return 0 ;;
    esac
    tool=$(mandos_ts_source "$(mandos_ts_libdir)")/dist/src/boot/trim-icu-main.js
    if [[ ! -f $tool ]]; then
        dwarning "mandos-ts: $tool not found; node keeps all of its ICU data (reinstall with \"npm run install-system\")"
    elif out=$("$(mandos_ts_node)" "$tool" "$1" 2>&1); then
        dinfo "mandos-ts: $out"
    else
        dwarning "mandos-ts: node keeps all of its ICU data: ${out%%$'\n'*}"
    fi
}

check() {
    # The image holds the host's secret keys: a generic image would
    # copy one host's keys into an image meant for any host.
    if [[ -z ${hostonly:-} ]]; then
        derror "mandos-ts: refusing to build a generic (non-hostonly) initramfs: it would contain this host's Mandos client keys; build with --hostonly"
        return 1
    fi
    if ! mandos_ts_keydir > /dev/null; then
        dwarning "mandos-ts: no Mandos client keys in /etc/keys/mandos or /etc/mandos/keys (see mandos-keygen(8))"
        return 1
    fi
    local agent
    agent=$(mandos_ts_source "$(mandos_ts_libdir)")/password-agent
    if [[ ! -x $agent ]]; then
        dwarning "mandos-ts: $agent not found; run \"npm run install-system\""
        return 1
    fi
    local node
    node=$(mandos_ts_node)
    if [[ ! -x $node ]]; then
        dwarning "mandos-ts: node ($node, named by $agent) not found"
        return 1
    fi
    # Debian's own 90mandos (package mandos-client) also offers itself
    # when keys exist; where it is present, be chosen only on request
    # (--add mandos-ts), so that the two agents never both run.
    if [[ -d ${dracutbasedir:-/usr/lib/dracut}/modules.d/90mandos ]]; then
        return 255
    fi
    return 0
}

depends() {
    echo systemd systemd-modules-load crypt
}

installkernel() {
    # The host's network drivers (all of them if not hostonly), and
    # IPv6 for link-local addresses.
    instmods "=drivers/net"
    hostonly='' instmods ipv6
    local hook module
    while read -r hook; do
        while read -r module; do
            [[ -n $module ]] && hostonly='' instmods "$module"
        done < <(mandos_ts_hook_list "$hook" modules)
    done < <(mandos_ts_hooks -x)
    # Early loading: systemd-modules-load.service starts with systemd,
    # without waiting for udevd or anything else, and reads no shell
    # (dracut's rd.driver.pre would hold back udevd, behind
    # dracut-cmdline's and dracut-pre-udev's shell scripts).  A module it
    # cannot load fails only that unit, which nothing requires.
    local early=()
    mapfile -t early < <(mandos_ts_early_modules)
    ((${#early[@]})) || return 0
    hostonly='' instmods "${early[@]}"
    local conf=$initdir${modulesload:-/usr/lib/modules-load.d}/mandos-ts-network.conf
    mkdir -p "${conf%/*}"
    {
        echo "# Network drivers, loaded before udev's coldplug: the Mandos"
        echo "# client (90mandos-ts) starts before it, and fetches as soon as the"
        echo "# network interface exists."
        printf '%s\n' "${early[@]}"
    } > "$conf"
}

install() {
    local libdir source_libdir node file
    libdir=$(mandos_ts_libdir)
    source_libdir=$(mandos_ts_source "$libdir")
    node=$(mandos_ts_node)

    inst_binary "$node" || return 1
    # Fully, not only the debugging symbols dracut strips: 94 MiB -> 82.
    # Into a new file that replaces the image's copy: strip in place
    # writes through hard links, and the host's node must stay as it is.
    if command -v strip > /dev/null; then
        strip -o "$initdir$node.stripped" "$node" && mv -f "$initdir$node.stripped" "$initdir$node" || return 1
    else
        dwarning "mandos-ts: strip (binutils) not found; node goes into the image unstripped"
    fi
    mandos_ts_trim_node_icu "$initdir$node"
    # The boot programs: their launchers and boot/, whose koffi native
    # module needs its libraries too; nothing else of the program tree.
    if [[ ! -d $source_libdir/boot ]]; then
        derror "mandos-ts: $source_libdir/boot not found; reinstall with \"npm run install-system\""
        return 1
    fi
    while read -r file; do
        mandos_ts_inst_library "$file" "$libdir/${file#"$source_libdir"/}" || return 1
    done < <(find "$source_libdir/boot" -type f -name '*.node')
    mkdir -p "$initdir$libdir"
    cp -R -p -n "$source_libdir/boot" "$source_libdir/no-network-hooks.d" \
        "$source_libdir/password-agent" "$source_libdir/mandos-client" "$initdir$libdir/"
    # koffi opens GnuTLS at run time: no ELF dependency leads to it.
    local gnutls
    gnutls=$(mandos_ts_find_library libgnutls.so.30)
    if [[ -z $gnutls ]]; then
        derror "mandos-ts: libgnutls.so.30 not found (install libgnutls30)"
        return 1
    fi
    mandos_ts_inst_library "$gnutls" || return 1
    # The generator's tools, and iproute2's ip, which the client runs to
    # bring interfaces up and add routes.
    inst_multiple sed mkdir ln
    inst_multiple -o ip || dwarning "mandos-ts: iproute2's ip not found; the client cannot bring interfaces up"

    # Units and the generator
    local unit
    for unit in ask-password-mandos.path ask-password-mandos.service; do
        inst_simple "$(mandos_ts_source "$mandos_ts_prefix/lib/systemd/system/$unit")" \
            "$systemdsystemunitdir/$unit" || return 1
    done
    inst_script "$(mandos_ts_source "$mandos_ts_prefix/lib/systemd/system-generators/mandos-generator")" \
        "$systemdutildir/system-generators/mandos-generator" || return 1
    # The path unit for questions, the service itself to prefetch at boot.
    $SYSTEMCTL -q --root "$initdir" enable ask-password-mandos.path ask-password-mandos.service
    # The administrator's drop-ins (e.g. MANDOS_CLIENT_OPTIONS=...)
    local dropins=/etc/systemd/system/ask-password-mandos.service.d
    if [[ -d $dropins ]]; then
        inst_dir "$dropins"
        inst_multiple -o "$dropins"/*.conf
    fi

    # Client keys, for the client's user only
    local keydir keys=/etc/mandos/keys name
    keydir=$(mandos_ts_keydir)
    inst_dir "$keys"
    for file in "$keydir"/*; do
        name=${file##*/}
        [[ -f $file ]] || continue
        case $name in
            *~ | .* | \#*\# | *.dpkg-old | *.dpkg-bak | *.dpkg-new | *.dpkg-dist | *.dpkg-divert) continue ;;
        esac
        inst_simple "$file" "$keys/$name" || return 1
        chown "$mandos_ts_uid:$mandos_ts_gid" "$initdir$keys/$name"
        chmod 0400 "$initdir$keys/$name"
    done
    chown "$mandos_ts_uid:$mandos_ts_gid" "$initdir$keys"
    chmod 0500 "$initdir$keys"

    # Network hooks and the files they ask for ("FILE [TARGET]" lines)
    local hook target
    while read -r hook; do
        inst_simple "$hook" "/lib/mandos/network-hooks.d/${hook##*/}"
        [[ -x $hook ]] || continue
        while read -r file target; do
            [[ -n $file ]] || continue
            if [[ ! -e $file ]]; then
                dwarning "mandos-ts: file $file, asked for by network hook ${hook##*/}, not found"
                continue
            fi
            if [[ -n $target ]]; then
                inst "$file" "$target"
            else
                inst "$file"
            fi
        done < <(mandos_ts_hook_list "$hook" files)
    done < <(mandos_ts_hooks)
}
