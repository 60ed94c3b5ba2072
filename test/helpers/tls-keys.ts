// A fresh Ed25519 TLS key pair in the PEM forms Mandos uses (SPKI, PKCS#8),
// and one Mandos request made with it.
import { generateKeyPairSync } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { Credentials, TlsConnection } from "../../src/tls/index.js";

export function tlsKeyPair(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return {
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

/**
 * What a well-behaved Mandos client does, with our TLS engine: connect, send
 * the protocol line, present `keys` in TLS and read all the server sends
 * (empty when it sends no secret or the session fails).
 */
export async function fetchWithKeys(keys: { publicPem: string; privatePem: string }, host: string, port: number): Promise<Buffer> {
  const creds = Credentials.rawKey(keys.publicPem, keys.privatePem);
  const socket = net.connect(port, host);
  try {
    await once(socket, "connect");
    socket.write("1\r\n");
    const tls = await TlsConnection.accept(socket, creds, { handshakeTimeoutMs: 5000 });
    const data = await tls.readAll(1 << 20, 5000).catch(() => Buffer.alloc(0));
    tls.destroy();
    return data;
  } finally {
    socket.destroy();
    creds.dispose();
  }
}
