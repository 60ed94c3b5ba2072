#!/bin/bash
# Installs the built programs and their systemd, dracut, D-Bus and man
# page files: `npm run install-system` after `npm run build`.
#
#   PREFIX   installation prefix (default /usr)
#   DESTDIR  staging root prepended to every path (default: none)
#   NODE     node binary the launchers run (default: `command -v node`)
#
# Layout (all under $DESTDIR$PREFIX):
#   lib/mandos-ts/            a launcher (CommonJS) for each program of bin/
#   lib/mandos-ts/boot/       dist/boot: the bundles of the programs that run
#                             at boot (mandos-client, password-agent), their
#                             code caches, loader and koffi's native module;
#                             all the initramfs takes (see 90mandos-ts)
#   lib/mandos-ts/dist/       dist/src (ES modules) for the other programs,
#                             with production node_modules beside it
#   sbin/                     symbolic links to the launchers of the
#                             programs not run at boot (mandos, mandos-ctl...)
#   lib/systemd/system/       units/*.service, *.socket, *.path
#   lib/systemd/system-generators/mandos-generator
#   lib/dracut/modules.d/90mandos-ts/
#   lib/sysusers.d/mandos-ts.conf, lib/tmpfiles.d/mandos-ts.conf
#   share/dbus-1/system.d/mandos.conf
#   share/man/manN/           man/*
# Re-running replaces what an earlier run installed; nothing outside
# $DESTDIR$PREFIX is touched. Installing onto this system (no DESTDIR), it
# refuses, before writing anything, when a file it would write, or a
# program, unit or man page of the same name elsewhere, belongs to a Debian
# package (Debian's mandos and mandos-client ship /usr/sbin/mandos*,
# mandos.service and their man pages): it never replaces or shadows them.
set -euo pipefail
umask 022

die() {
	echo "install-system: $*" >&2
	exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PREFIX:-/usr}
DESTDIR=${DESTDIR:-}
case $PREFIX in
/*) ;;
*) die "PREFIX must be an absolute path, not \"$PREFIX\"" ;;
esac
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || die "PREFIX must not be /"
case $PREFIX$DESTDIR in
*[!A-Za-z0-9_./-]*) die "PREFIX and DESTDIR may only contain A-Z a-z 0-9 _ . / -" ;;
esac
NODE=${NODE:-$(command -v node || true)}
[ -n "$NODE" ] || die "node not found; set NODE=/path/to/node"
case $NODE in
/*) ;;
*) die "NODE must be an absolute path, not \"$NODE\"" ;;
esac

[ -d "$repo/dist/src" ] && [ -d "$repo/dist/boot" ] ||
	die "$repo/dist/src or dist/boot is missing: build first with \`npm run build\`"
# koffi's native package for the architecture of the node that runs the
# programs (x64, arm64...), as scripts/bundle.ts takes for dist/boot.
arch=$("$NODE" -p process.arch)
koffi_native=node_modules/@koromix/koffi-linux-$arch
[ -d "$repo/$koffi_native" ] ||
	die "$repo/$koffi_native is missing: install the dependencies first (npm ci)"

dest=$DESTDIR$PREFIX
libdir=$dest/lib/mandos-ts

# Programs: launcher name -> folder under dist/src, or "boot" for the
# programs that run from their bundle in dist/boot. Read from bin/, so a
# new launcher there is installed (and packaged) without editing this.
declare -A programs=()
for launcher in "$repo"/bin/*; do
	name=${launcher##*/}
	[ "$name" != package.json ] || continue
	folder=$(sed -n -e 's#^import("\.\./dist/src/\([A-Za-z0-9_-]*\)/main\.js");$#\1#p' \
		-e 's#^require("\.\./dist/boot/launch\.cjs")\.launch("'"$name"'");$#boot#p' "$launcher")
	[ -n "$folder" ] ||
		die "bin/$name launches neither dist/src/FOLDER/main.js nor its boot bundle"
	programs[$name]=$folder
done
# The programs an administrator runs get a link in sbin; the boot
# programs are run by the password agent and its unit only.
sbin_programs=()
for name in "${!programs[@]}"; do
	[ "${programs[$name]}" = boot ] || sbin_programs+=("$name")
done

# --- Files of Debian packages -----------------------------------------
# Every path this run writes or could shadow, for `dpkg-query -S`.
own_paths() {
	local name page section dir
	for name in "${!programs[@]}" mandos-generator; do
		echo "$libdir/$name"
	done
	for name in "${sbin_programs[@]}"; do
		for dir in "$dest/sbin" /usr/sbin /sbin /usr/bin /bin; do echo "$dir/$name"; done
	done
	for name in "$repo"/units/*.service "$repo"/units/*.socket "$repo"/units/*.path; do
		for dir in "$dest/lib/systemd/system" /lib/systemd/system /usr/lib/systemd/system; do echo "$dir/${name##*/}"; done
	done
	for dir in "$dest/lib/systemd/system-generators" /lib/systemd/system-generators /usr/lib/systemd/system-generators; do
		echo "$dir/mandos-generator"
	done
	echo "$dest/share/dbus-1/system.d/mandos.conf"
	for page in "$repo"/man/*; do
		name=${page##*/}
		section=${name##*.}
		for dir in "$dest/share/man" /usr/share/man; do
			echo "$dir/man${section:0:1}/$name"
			echo "$dir/man${section:0:1}/$name.gz"
		done
	done
}
if [ -z "$DESTDIR" ] && command -v dpkg-query >/dev/null; then
	mapfile -t paths < <(own_paths | sort -u)
	owned=$(dpkg-query -S "${paths[@]}" 2>/dev/null | grep -v '^diversion by' || true)
	if [ -n "$owned" ]; then
		echo "install-system: refusing to install into $PREFIX: these files belong to Debian packages and would be replaced or shadowed:" >&2
		sed 's/^/  /' <<<"$owned" >&2
		die "remove those packages first, or stage the install with DESTDIR=DIR"
	fi
fi

# --- The program tree -------------------------------------------------
rm -rf "$libdir"
mkdir -p "$libdir/dist" "$libdir/node_modules"
cp -R "$repo/dist/src" "$libdir/dist/src"
cp -R "$repo/dist/boot" "$libdir/boot"
# dist/src holds ES modules. Nothing else may say "module": the
# extensionless launchers are CommonJS, which starts faster.
printf '{ "type": "module" }\n' >"$libdir/dist/package.json"
# The client runs no network hooks itself when systemd runs them as
# units; the agent's service points it at this empty directory.
mkdir -p "$libdir/no-network-hooks.d"

for program in "${!programs[@]}"; do
	if [ "${programs[$program]}" = boot ]; then
		[ -f "$repo/dist/boot/$program.cjs" ] || die "dist/boot/$program.cjs is missing: build with \`npm run build\`"
		printf '#!%s\nrequire("./boot/launch.cjs").launch("%s");\n' "$NODE" "$program" >"$libdir/$program"
	else
		main=dist/src/${programs[$program]}/main.js
		[ -f "$repo/$main" ] ||
			echo "install-system: warning: $main is not built; $program will not run" >&2
		# The import resolves against the launcher's real path, so the
		# sbin links below work too.
		printf '#!%s\nimport("./%s");\n' "$NODE" "$main" >"$libdir/$program"
	fi
	chmod 0755 "$libdir/$program"
done

# Production dependencies, as recorded in package-lock.json and present
# in node_modules (skips dev-only and uninstalled optional packages).
# Of koffi's per-platform native packages, only this architecture's is kept.
production_packages() {
	"$NODE" -e '
		const lock = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		for (const [path, pkg] of Object.entries(lock.packages ?? {}))
			if (path.startsWith("node_modules/") && !pkg.dev) console.log(path);
	' "$repo/package-lock.json"
}
while read -r package; do
	case $package in
	*/node_modules/*) continue ;; # copied with the package it is nested in
	# Type declarations only (protobufjs lists @types/node among its
	# dependencies): nothing loads them at run time.
	node_modules/@types/*) continue ;;
	node_modules/@koromix/koffi-*) [ "$package" = "$koffi_native" ] || continue ;;
	esac
	[ -d "$repo/$package" ] || continue
	mkdir -p "$(dirname "$libdir/$package")"
	cp -R "$repo/$package" "$libdir/$package"
done < <(production_packages)

# Prune what no program loads at run time: documentation, TypeScript
# sources and type declarations, source maps, tests, examples, C++
# sources and build helpers, other libc builds and the browser builds of
# openpgp.
modules=$libdir/node_modules
find "$modules" \( -type d \( -name test -o -name tests -o -name example -o -name examples \
	-o -name doc -o -name docs -o -name typings -o -name .github \) -prune -exec rm -rf {} + \)
find "$modules" -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \
	-o -name '*.md' -o -name '*.markdown' -o -name '.travis.yml' -o -name appveyor.yml \
	-o -name .npmignore -o -name .yarnrc.yml -o -name 'tsconfig*.json' \) ! -iname 'licen[cs]e*' -delete
rm -rf "$modules/koffi/vendor" "$modules/koffi/lib" "$modules/koffi/cnoke.cjs" \
	"$modules/koffi/src/koffi/CMakeLists.txt" "$libdir/$koffi_native/musl_$arch"
find "$modules/koffi/src" -type f \( -name '*.cc' -o -name '*.hh' -o -name '*.inc' -o -name '*.def' \
	-o -name '*.S' -o -name '*.asm' \) -delete
if [ -d "$modules/openpgp/dist/node" ]; then
	# Node's "import" loads dist/node/openpgp.mjs, "require" openpgp.min.cjs.
	find "$modules/openpgp/dist" -mindepth 1 -maxdepth 1 ! -name node -exec rm -rf {} +
	rm -rf "$modules/openpgp/lightweight" "$modules/openpgp/dist/node/openpgp.cjs" \
		"$modules/openpgp/dist/node/openpgp.min.mjs"
fi
find "$modules" -depth -type d -empty -delete
# Nothing in node_modules is run as a program; executable scripts there
# would make dracut pull in their interpreters (#!/usr/bin/env node).
find "$modules" -type f -perm /111 -exec chmod a-x {} +
[ -f "$libdir/$koffi_native/linux_$arch/koffi.node" ] ||
	die "koffi's native module for linux-$arch is missing from $koffi_native"

# --- Launchers in sbin ------------------------------------------------
mkdir -p "$dest/sbin"
for program in "${sbin_programs[@]}"; do
	ln -sfn "../lib/mandos-ts/$program" "$dest/sbin/$program"
done

# --- systemd, D-Bus, sysusers, tmpfiles -------------------------------
# Units and the dracut module name /usr paths; follow PREFIX.
relocate() {
	sed -e "s#/usr/lib/mandos-ts#$PREFIX/lib/mandos-ts#g" \
		-e "s#/usr/sbin/mandos#$PREFIX/sbin/mandos#g" \
		-e "s#^mandos_ts_prefix=/usr\$#mandos_ts_prefix=$PREFIX#" "$1"
}
install_file() { # MODE SOURCE TARGET, relocated
	mkdir -p "$(dirname "$3")"
	relocate "$2" >"$3.tmp"
	chmod "$1" "$3.tmp"
	mv -f "$3.tmp" "$3"
}

unitdir=$dest/lib/systemd/system
for unit in "$repo"/units/*; do
	case $unit in
	*.service | *.socket | *.path | *.timer | *.target | *.mount)
		install_file 0644 "$unit" "$unitdir/${unit##*/}"
		;;
	esac
done
if [ -f "$repo/units/dbus-mandos.conf" ]; then
	install_file 0644 "$repo/units/dbus-mandos.conf" "$dest/share/dbus-1/system.d/mandos.conf"
fi
install_file 0755 "$repo/generators/mandos-generator" \
	"$dest/lib/systemd/system-generators/mandos-generator"

mkdir -p "$dest/lib/sysusers.d" "$dest/lib/tmpfiles.d"
# The same user and state directory owner as Debian's mandos package, so
# that whichever of its lines and ours systemd reads first, the server (it
# takes _mandos first) can write its state.
cat >"$dest/lib/sysusers.d/mandos-ts.conf" <<'EOF'
# The Mandos server (mandos.service) runs as this user, as Debian's does.
u _mandos - "Mandos password system"
EOF
cat >"$dest/lib/tmpfiles.d/mandos-ts.conf" <<'EOF'
# The Mandos server's state (client checkers, timeouts) across restarts.
d /var/lib/mandos 0700 _mandos _mandos -
EOF
chmod 0644 "$dest/lib/sysusers.d/mandos-ts.conf" "$dest/lib/tmpfiles.d/mandos-ts.conf"

# --- dracut module ----------------------------------------------------
moduledir=$dest/lib/dracut/modules.d/90mandos-ts
rm -rf "$moduledir"
for file in "$repo"/dracut/90mandos-ts/*; do
	mode=0644
	[ ! -x "$file" ] || mode=0755
	install_file "$mode" "$file" "$moduledir/${file##*/}"
done

# --- man pages --------------------------------------------------------
for page in "$repo"/man/*; do
	[ -f "$page" ] || continue
	name=${page##*/}
	section=${name##*.}
	section=${section:0:1}
	case $section in
	[1-9]) install -D -m 0644 "$page" "$dest/share/man/man$section/$name" ;;
	*) echo "install-system: warning: skipping $page (no man section in its name)" >&2 ;;
	esac
done

echo "install-system: installed into ${DESTDIR:+$DESTDIR (staging) }$PREFIX"
