// The TLS engine: GnuTLS with RFC 7250 raw public keys, as Mandos 1.8 speaks it.
export { Credentials, TlsConnection, TlsError, DEFAULT_PRIORITY, checkPriority } from "./session.js";
export type { ConnectionOptions, PeerKeyType } from "./session.js";
export { GnuTlsError, GnuTlsUnavailable, tlsResources } from "./gnutls.js";
export { keyIdFromSpki, keyIdFromPem, spkiDer } from "./keyid.js";
