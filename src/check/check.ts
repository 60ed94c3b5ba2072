// mandos-check's steps, in order: the keys on disk, each initramfs the
// next boot may use (our module, its units, the generator, the same
// keys), the client's options as the initramfs would give them, the
// devices it unlocks, the servers, and the password on each device. Each
// step reports its lines; the first problem decides the verdict and the
// exit code. The password stays in memory, goes only to cryptsetup's
// standard input, and is wiped.
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { checkTlsKeys, type KeyMaterial } from "../client/keys.js";
import { clientSelection } from "../client/options.js";
import { readKeyFile } from "../sys/key-file.js";
import { keyIdFromPem } from "../tls/keyid.js";
import { errorMessage } from "../cli/log.js";
import { defaultRelease, imagesToCheck, listImage, readFromImage, type Entry, type Image } from "./initramfs.js";
import { SERVICE, clientCommand, runGenerator, unitEnvironment } from "./client-args.js";
import { parseCrypttab, selectDevices, sourcePath, testPassword, type CrypttabEntry } from "./devices.js";
import { askServers, describeState } from "./servers.js";
import type { CheckOptions } from "./options.js";

/** Exit codes (mandos-check(8)). */
export const EXIT = { unlocks: 0, error: 1, initramfs: 3, servers: 4, devices: 5, setup: 6, usage: 64 } as const;
type Problem = { code: number; text: string };

/** Where the dracut module takes the keys from, first found (90mandos-ts). */
export const KEY_DIRS = ["/etc/keys/mandos", "/etc/mandos/keys"];
const KEY_FILES = [
  ["pubkey", "pubkey.txt"],
  ["seckey", "seckey.txt"],
  ["tls-pubkey", "tls-pubkey.pem"],
  ["tls-privkey", "tls-privkey.pem"],
] as const;
/** Where the module puts what the boot needs (its default prefix, /usr). */
const IMAGE_KEYS = "etc/mandos/keys";
const IMAGE_UNIT = `usr/lib/systemd/system/${SERVICE}`;
const IMAGE_GENERATOR = "usr/lib/systemd/system-generators/mandos-generator";
const IMAGE_DROPINS = `etc/systemd/system/${SERVICE}.d/`;
const MODULE_FILES = [
  "usr/lib/mandos-ts/password-agent",
  "usr/lib/mandos-ts/mandos-client",
  "usr/lib/mandos-ts/boot/mandos-client.cjs",
  "usr/lib/systemd/system/ask-password-mandos.path",
  IMAGE_UNIT,
  "etc/systemd/system/sysinit.target.wants/ask-password-mandos.path",
  IMAGE_GENERATOR,
  ...KEY_FILES.map(([, f]) => `${IMAGE_KEYS}/${f}`),
];

interface Identity {
  keyId: string;
  fingerprint: string;
}

/** The key id and OpenPGP fingerprint of a key set (its halves checked to belong together). */
async function identify(keys: KeyMaterial, where: string): Promise<Identity> {
  checkTlsKeys(keys.tlsPublicPem, keys.tlsPrivatePem, { pub: `${where}/tls-pubkey.pem`, priv: `${where}/tls-privkey.pem` });
  const pgp = await import("../pgp/index.js");
  const loaded = await pgp.loadDecryptionKeys(keys.pgpPublic, keys.pgpSecret, { pubkey: `${where}/pubkey.txt`, seckey: `${where}/seckey.txt` });
  return { keyId: keyIdFromPem(keys.tlsPublicPem), fingerprint: loaded.fingerprint };
}

function keyMaterial(read: (file: string) => string): KeyMaterial {
  return { pgpPublic: read("pubkey.txt"), pgpSecret: read("seckey.txt"), tlsPublicPem: read("tls-pubkey.pem"), tlsPrivatePem: read("tls-privkey.pem") };
}

const readlinkOrNull = (path: string) => {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
};

/** Runs every step, printing a line each (`out`); resolves with the exit code. */
export async function runCheck(opts: CheckOptions, out: (line: string) => void, debug: (line: string) => void): Promise<number> {
  const problems: Problem[] = [];
  /** A problem; `shown` when a line above already says it (the verdict repeats it). */
  const problem = (code: number, text: string, shown = false) => {
    problems.push({ code, text });
    if (!shown) out(text);
  };
  const verdict = () => {
    const first = problems[0];
    if (!first) {
      out("verdict: this machine would unlock unattended if it rebooted now");
      return EXIT.unlocks;
    }
    out(`verdict: this machine would NOT unlock unattended: ${first.text}`);
    return first.code;
  };

  // The keys on disk
  const keyDir = opts.keyDir ?? KEY_DIRS.find((d) => existsSync(d));
  if (!keyDir) {
    problem(EXIT.setup, `keys: none in ${KEY_DIRS.join(" or ")} (see mandos-keygen(8))`);
    return verdict();
  }
  let disk: Identity;
  try {
    disk = await identify(keyMaterial((f) => readKeyFile(join(keyDir, f), "key file").toString("utf8")), keyDir);
  } catch (err) {
    problem(EXIT.setup, `keys: ${errorMessage(err)}`);
    return verdict();
  }
  out(`keys: ${keyDir}: key id ${disk.keyId}, OpenPGP fingerprint ${disk.fingerprint}`);

  // Each initramfs the next boot may use
  const images = imagesToCheck(opts.bootDir, opts.kernelRelease, defaultRelease(opts.bootDir, readlinkOrNull));
  let usable: { image: Image; listing: Map<string, Entry> } | null = null;
  for (const image of images) {
    const name = `initramfs ${image.path} (${image.roles.join(", ")})`;
    if (!existsSync(image.path)) {
      problem(EXIT.initramfs, `${name}: missing`);
      continue;
    }
    try {
      const listing = await listImage(image.path);
      const missing = MODULE_FILES.filter((p) => !listing.has(p));
      if (missing.length > 0) {
        problem(EXIT.initramfs, `${name}: lacks /${missing.join(", /")}: rebuild it with dracut's module mandos-ts`);
        continue;
      }
      const inImage: Record<string, string> = {};
      for (const [, f] of KEY_FILES) inImage[f] = (await readFromImage(image.path, `${IMAGE_KEYS}/${f}`)).toString("utf8");
      const id = await identify(keyMaterial((f) => inImage[f]!), `${image.path}:/${IMAGE_KEYS}`);
      if (id.keyId !== disk.keyId || id.fingerprint !== disk.fingerprint) {
        problem(
          EXIT.initramfs,
          `${name}: its keys differ from ${keyDir}: key id ${id.keyId}, OpenPGP fingerprint ${id.fingerprint} in the image; rebuild it (update-initramfs -u or dracut --force)`,
        );
        continue;
      }
      out(`${name}: module mandos-ts, its units and generator present; same keys`);
      // The next boot boots the default entry: its image gives the client's options.
      if (!usable || image.roles.includes("default boot entry")) usable = { image, listing };
    } catch (err) {
      problem(EXIT.initramfs, `${name}: ${errorMessage(err)}`);
    }
  }
  if (!usable) {
    out("servers: not asked: no initramfs to take the client's options from");
    return verdict();
  }

  // The client's options, as that initramfs would give them
  const { image, listing } = usable;
  const cmdline = readFileSync(opts.cmdline, "utf8").trim();
  const generated = await runGenerator(await readFromImage(image.path, IMAGE_GENERATOR), cmdline);
  if (generated.masked) {
    problem(EXIT.initramfs, `kernel command line: mandos=off: the initramfs will not run the Mandos agent`);
    return verdict();
  }
  const dropInNames = [...listing.keys()].filter((p) => p.startsWith(IMAGE_DROPINS) && p.endsWith(".conf"));
  const dropIns = new Map(generated.dropIns);
  for (const p of dropInNames) dropIns.set(p.slice(IMAGE_DROPINS.length), (await readFromImage(image.path, p)).toString("utf8"));
  const texts = [(await readFromImage(image.path, IMAGE_UNIT)).toString("utf8"), ...[...dropIns.keys()].sort().map((k) => dropIns.get(k)!)];
  const command = clientCommand(texts, unitEnvironment(texts));
  if (!command) {
    problem(EXIT.initramfs, `initramfs ${image.path}: /${IMAGE_UNIT} runs no client after "--"`);
    return verdict();
  }
  // Our own client, with the keys just compared (the same as the image's).
  const args = [...command.slice(1), ...KEY_FILES.map(([option, f]) => `--${option}=${join(keyDir, f)}`)];
  let connectMode: boolean;
  try {
    connectMode = clientSelection(args).connect !== null;
  } catch (err) {
    problem(EXIT.initramfs, `client options ${command.slice(1).join(" ")}: ${errorMessage(err)}`);
    return verdict();
  }
  out(`client options: ${command.slice(1).join(" ")}`);

  // The devices the initramfs unlocks
  const entries = existsSync(opts.crypttab) ? parseCrypttab(readFileSync(opts.crypttab, "utf8")) : [];
  const imageNames = new Set(
    listing.has("etc/crypttab") ? parseCrypttab((await readFromImage(image.path, "etc/crypttab")).toString("utf8")).map((e) => e.name) : [],
  );
  const { unlock, withKeyFile } = selectDevices(entries, imageNames);
  for (const e of withKeyFile) out(`device ${e.name}: unlocked with its key file ${e.keyFile}, not by Mandos`);
  if (unlock.length === 0) {
    problem(EXIT.setup, `devices: no entry of ${opts.crypttab} that the initramfs unlocks with a password (none in the image's crypttab, none marked initramfs)`);
  }

  // The servers, and the password on each device
  const outcome = await askServers([opts.client, ...args], { connectMode, waitMs: opts.waitSeconds * 1000, settleMs: Math.min(opts.waitSeconds, 10) * 1000 }, debug);
  const password = outcome.password;
  try {
    let deviceText = "";
    const failedDevices: string[] = [];
    if (password) {
      const opened: string[] = [];
      for (const e of unlock) {
        const result = await testPassword(sourcePath(e.source), password);
        if (result.opens) opened.push(describeDevice(e));
        else failedDevices.push(`${describeDevice(e)}: ${result.reason}`);
      }
      deviceText = [opened.length > 0 ? `opens ${opened.join(", ")}` : "", failedDevices.length > 0 ? `does not open ${failedDevices.join("; ")}` : ""]
        .filter((t) => t !== "")
        .join("; ");
    }
    let decrypted = false;
    for (const s of outcome.servers) {
      const line = `server ${s.server}: ${describeState(s, disk.keyId, opts.waitSeconds)}`;
      if (s.end?.type === "decrypted" && password && !decrypted) {
        decrypted = true;
        out(deviceText ? `${line}; ${deviceText}` : line);
      } else out(line);
    }
    // k-of-n: no one server gave the password, the shares did.
    if (password && !decrypted) out(`shares: combined into the password${deviceText ? `; ${deviceText}` : ""}`);
    if (!password) {
      const failed = outcome.servers.find((s) => s.end?.type === "failed");
      const shares = outcome.servers.flatMap((s) => (s.end?.type === "share" ? [s.end] : []));
      const why =
        outcome.servers.length === 0
          ? `no server found within ${opts.waitSeconds} s${outcome.messages.length > 0 ? ` (the client: ${outcome.messages.at(-1)})` : ""}`
          : shares.length > 0
            ? `shares from ${shares.length} server(s) decrypt, ${Math.max(...shares.map((e) => e.threshold))} needed; no password within ${opts.waitSeconds} s`
            : `no server gave a secret that decrypts${failed ? ` (server ${failed.server}: ${describeState(failed, disk.keyId, opts.waitSeconds).split("; ").pop()})` : ""}`;
      problem(EXIT.servers, `servers: ${why}`, outcome.servers.length > 0);
    } else if (failedDevices.length > 0) {
      problem(EXIT.devices, `devices: the secret does not open ${failedDevices.join("; ")}`, true);
    }
  } finally {
    password?.fill(0);
  }
  return verdict();
}

function describeDevice(e: CrypttabEntry): string {
  return `${e.name} (${sourcePath(e.source)})`;
}
