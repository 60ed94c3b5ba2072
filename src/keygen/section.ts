// The clients.conf section mandos-keygen prints for a client, in the layout
// Debian's keygen uses: the encrypted secret as base64 continuation lines
// of 64 characters (gpg's armor width) indented four spaces, and an
// ssh-keyscan checker when the host has an SSH server. Pure.

export interface SshHostKey {
  /** Key type as given to ssh-keyscan -t, e.g. "ecdsa-sha2-nistp256". */
  keytype: string;
  /** The key as ssh-keyscan prints it after the host name: "TYPE BASE64". */
  fingerprint: string;
}

export interface ClientSection {
  name: string;
  keyId?: string;
  fingerprint: string;
  /** The binary OpenPGP message (not secret itself, but only its base64 is printed). */
  secret: Uint8Array;
  ssh?: SshHostKey;
}

export const SECRET_LINE_WIDTH = 64;

export function secretLines(secret: Uint8Array): string[] {
  const b64 = Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += SECRET_LINE_WIDTH) lines.push("    " + b64.slice(i, i + SECRET_LINE_WIDTH));
  return lines;
}

/**
 * The checker runs ssh-keyscan against the client and succeeds only if it
 * presents the same host key. "%%(host)s" survives clients.conf's own
 * interpolation as "%(host)s", which the server fills in per client.
 */
export function sshChecker(key: SshHostKey): string {
  return (
    `ssh-keyscan -t ${key.keytype} %%(host)s 2>/dev/null` +
    ` | grep --fixed-strings --line-regexp --quiet --regexp=%%(host)s" %(ssh_fingerprint)s"`
  );
}

export function formatClientSection(s: ClientSection): string {
  const lines = [`[${s.name}]`, `host = ${s.name}`];
  if (s.keyId) lines.push(`key_id = ${s.keyId}`);
  lines.push(`fingerprint = ${s.fingerprint}`, "secret =", ...secretLines(s.secret));
  if (s.ssh) {
    lines.push(`checker = ${sshChecker(s.ssh)}`, `ssh_fingerprint = ${s.ssh.fingerprint}`);
  }
  return lines.join("\n") + "\n";
}
