// A fresh Ed25519 TLS key pair in the PEM forms Mandos uses (SPKI, PKCS#8),
// and a client that fetches a secret with one.
import { generateKeyPairSync } from "node:crypto";
import net from "node:net";
import { once } from "node:events";
import { Credentials, TlsConnection } from "../../src/tls/index.js";
import { CLIENT_HELLO_LINE } from "../../src/protocol/version-line.js";

export function tlsKeyPair(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return {
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

/**
 * A well-behaved Mandos client using our TLS engine: connect, send the
 * version line, handshake with `keys`, read everything the server sends
 * (the secret, or nothing for an unknown key).
 */
export async function fetchOverTls(host: string, port: number, keys: { publicPem: string; privatePem: string }, timeoutMs = 5000): Promise<Buffer> {
  const creds = Credentials.rawKey(keys.publicPem, keys.privatePem);
  const s = net.connect(port, host);
  try {
    await once(s, "connect");
    s.write(CLIENT_HELLO_LINE);
    const c = await TlsConnection.accept(s, creds, { handshakeTimeoutMs: timeoutMs });
    const data = await c.readAll(1 << 20, timeoutMs).catch(() => Buffer.alloc(0));
    c.destroy();
    return data;
  } finally {
    s.destroy();
    creds.dispose();
  }
}
