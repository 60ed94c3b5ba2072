// The OpenPGP core: reading the client's keys, decrypting and encrypting
// secrets, fingerprints and key generation. openpgp.js is loaded lazily;
// call preload() early to overlap its loading with other waiting.
export { preload } from "./load.js";
export { PgpError } from "./errors.js";
export { loadDecryptionKeys, fingerprint, type DecryptionKeys } from "./keys.js";
export { decryptSecret, encryptSecret } from "./secret.js";
export { generateKeys, type GenerateKeysOptions, type GeneratedKeys } from "./generate.js";
export { resolveKeySpecs, describeKeySpecs, KeySpecError, type KeySpecs, type KeyTypeOptions } from "./keyspec.js";
export { parseExpire, ExpireError } from "./expire.js";
