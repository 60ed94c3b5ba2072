// mandos.conf: Debian's file, the man page's example, Mandos's defaults and
// its split between raw text settings and interpolated booleans/numbers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  parseServerConf,
  loadServerConf,
  overlayServerConfig,
  DEFAULT_PRIORITY,
  type ServerConfig,
} from "../../src/config/server.js";
import { ConfigError } from "../../src/config/errors.js";
import { requires, tempDir } from "../helpers/index.js";

const DEBIAN_SERVER = "/etc/mandos/mandos.conf";

const DEFAULTS: ServerConfig = {
  interface: null,
  address: null,
  port: null,
  debug: false,
  priority: "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA",
  servicename: "Mandos",
  useDbus: true,
  useIpv6: true,
  debuglevel: null,
  restore: true,
  socket: null,
  statedir: "/var/lib/mandos",
  foreground: false,
  zeroconf: true,
  checkerUser: "nobody",
  maxConnectionsPerAddress: 64,
  metricsAddress: null,
  fleet: null,
};

test("Mandos's defaults, from an empty file", () => {
  assert.deepEqual(parseServerConf("", "mandos.conf"), DEFAULTS);
  assert.deepEqual(parseServerConf("[DEFAULT]\n", "mandos.conf"), DEFAULTS);
  assert.equal(DEFAULT_PRIORITY, DEFAULTS.priority);
});

test("Debian's installed mandos.conf (all commented out) gives the defaults", { skip: requires({ files: [DEBIAN_SERVER] }) }, () => {
  assert.deepEqual(loadServerConf(DEBIAN_SERVER), DEFAULTS);
});

test("the man page's example with every option", () => {
  const text = [
    "[DEFAULT]",
    "# A configuration example",
    "interface = enp1s0",
    "address = fe80::aede:48ff:fe71:f6f2",
    "port = 1025",
    "debug = True",
    "priority = SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA",
    "servicename = Daena",
    "use_dbus = False",
    "use_ipv6 = True",
    "restore = True",
    "statedir = /var/lib/mandos",
    "socket = 3",
    "foreground = yes",
    "zeroconf = off",
    "debuglevel = WARNING",
    "checker_user = mandos-checker",
    "max_connections_per_address = 16",
    "metrics_address = [::1]:9797",
  ].join("\n");
  assert.deepEqual(parseServerConf(text, "mandos.conf"), {
    interface: "enp1s0",
    address: "fe80::aede:48ff:fe71:f6f2",
    port: 1025,
    debug: true,
    priority: DEFAULT_PRIORITY,
    servicename: "Daena",
    useDbus: false,
    useIpv6: true,
    debuglevel: "WARNING",
    restore: true,
    socket: 3,
    statedir: "/var/lib/mandos",
    foreground: true,
    zeroconf: false,
    checkerUser: "mandos-checker",
    maxConnectionsPerAddress: 16,
    metricsAddress: { host: "::1", port: 9797 },
    fleet: null,
  } satisfies ServerConfig);
});

test("text settings are taken raw, booleans and numbers are interpolated (as Mandos reads them)", () => {
  const text = [
    "[DEFAULT]",
    "Port: %(base)s",
    "base = 4_000",
    "debug = %(yes)s",
    "yes = on",
    "servicename = 100%% %(base)s",
    "priority = NORMAL:%PROFILE_LOW",
    "[other]",
    "port = not read",
  ].join("\n");
  const config = parseServerConf(text, "m.conf");
  assert.equal(config.port, 4000);
  assert.equal(config.debug, true);
  assert.equal(config.servicename, "100%% %(base)s");
  assert.equal(config.priority, "NORMAL:%PROFILE_LOW");
  assert.equal(parseServerConf("[DEFAULT]\nport = 0\n", "m").port, 0);
});

test("bad values throw a one-line ConfigError naming file, line and key", () => {
  const cases: [string, string][] = [
    ["[DEFAULT]\nport = http", 'm.conf:2: [DEFAULT] port: must be a port number (0 to 65535), not "http"'],
    ["[DEFAULT]\nport = 70000", 'm.conf:2: [DEFAULT] port: must be a port number (0 to 65535), not "70000"'],
    ["[DEFAULT]\nsocket = -1", 'm.conf:2: [DEFAULT] socket: must be a file descriptor number, not "-1"'],
    ["[DEFAULT]\n\nuse_dbus = sometimes", 'm.conf:3: [DEFAULT] use_dbus: not a boolean: "sometimes" (use 1/yes/true/on or 0/no/false/off)'],
    ["[DEFAULT]\nport = %(nope)s", 'm.conf:2: [DEFAULT] port: %(nope)s refers to no option named "nope"'],
    ["[DEFAULT]\ndebug = 100%", 'm.conf:2: [DEFAULT] debug: a "%" must be followed by "%" or "(" (write "%%" for a percent sign)'],
    ["port = 1\n[DEFAULT]", "m.conf:1: text before the first section header (the file must start with a line like [DEFAULT])"],
    ["[DEFAULT]\nport = 1\nport = 2", "m.conf:3: [DEFAULT] port: set again (first at line 2)"],
    ["[DEFAULT]\n[x]\ngarbage", 'm.conf:3: [x]: not a section header, comment or "key = value" line'],
    ["[DEFAULT]\nmax_connections_per_address = 0", 'm.conf:2: [DEFAULT] max_connections_per_address: must be a number from 1 to 4096, not "0"'],
    ["[DEFAULT]\nmax_connections_per_address =", 'm.conf:2: [DEFAULT] max_connections_per_address: must be a number from 1 to 4096, not ""'],
    ["[DEFAULT]\nchecker_user =", "m.conf:2: [DEFAULT] checker_user: must name a user"],
    ["[DEFAULT]\nmetrics_address = 9797", 'm.conf:2: [DEFAULT] metrics_address: must be HOST:PORT, such as [::1]:9797, not "9797"'],
    ["[DEFAULT]\nmetrics_address = ::1:9797", 'm.conf:2: [DEFAULT] metrics_address: must be HOST:PORT, such as [::1]:9797, not "::1:9797"'],
    ["[DEFAULT]\nmetrics_address = localhost:65536", 'm.conf:2: [DEFAULT] metrics_address: must be HOST:PORT, such as [::1]:9797, not "localhost:65536"'],
    ["[DEFAULT]\ndebug = x\nzeroconf = y", 'm.conf:2: [DEFAULT] debug: not a boolean: "x" (use 1/yes/true/on or 0/no/false/off) (and 1 more problems)'],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseServerConf(text, "m.conf"), (e: unknown) => e instanceof ConfigError && e.message === message, `${text} → ${message}`);
  }
});

test("loadServerConf: a missing file gives the defaults; an unreadable one throws", () => {
  using dir = tempDir();
  assert.deepEqual(loadServerConf(join(dir.path, "mandos.conf")), DEFAULTS);
  const path = join(dir.path, "real.conf");
  writeFileSync(path, "[DEFAULT]\nport = 9\n");
  assert.equal(loadServerConf(path).port, 9);
  writeFileSync(path, "[DEFAULT]\nport = x\n");
  assert.throws(() => loadServerConf(path), { name: "ConfigError", message: `${path}:2: [DEFAULT] port: must be a port number (0 to 65535), not "x"` });
  const asDir = join(dir.path, "dir.conf");
  mkdirSync(asDir);
  assert.throws(() => loadServerConf(asDir), { name: "ConfigError", message: `${asDir}: cannot read: is a directory` });
});

test("overlayServerConfig: given options win, undefined ones do not, debug implies foreground", () => {
  const base = parseServerConf("[DEFAULT]\nport = 1025\nservicename = X\n", "m");
  const merged = overlayServerConfig(base, { port: null, servicename: undefined, debug: true, useDbus: false });
  assert.equal(merged.port, null);
  assert.equal(merged.servicename, "X");
  assert.equal(merged.debug, true);
  assert.equal(merged.foreground, true);
  assert.equal(merged.useDbus, false);
  assert.equal(base.port, 1025, "the base is not changed");
  assert.equal(overlayServerConfig(base, {}).foreground, false);
});
