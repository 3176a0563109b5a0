// The access-token signing key for local runs: an Ed25519 private JWK (with a kid) for the secret AUTH_SIGNING_KEY.
// `npm start` runs this file, which writes a fresh key into .dev.vars (git-ignored; wrangler dev reads it) when none
// is there; tests import `generateSigningJwk` and pass their own key as a var. Production sets the secret with
// `wrangler secret put AUTH_SIGNING_KEY` and publishes `publicJwk(key)` in the JWKS document (scripts/seed.mjs).
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, readFileSync, appendFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** A new private Ed25519 JWK: { kty: "OKP", crv: "Ed25519", x, d, kid, alg: "EdDSA", use: "sig" }. */
export function generateSigningJwk(kid = `dev-${randomBytes(4).toString("hex")}`) {
  const { privateKey } = generateKeyPairSync("ed25519");
  return { ...privateKey.export({ format: "jwk" }), kid, alg: "EdDSA", use: "sig" };
}

/**
 * The public half of a private JWK (what goes in the JWKS document): without `d`, and a `key_ops` it lists (a
 * private key's, `["sign"]`, as WebCrypto exports one) made `["verify"]`, since the gateway skips a key whose
 * `key_ops` leave verifying out (RFC 7517 §4.3).
 */
export function publicJwk(jwk) {
  const { d: _secret, ...pub } = typeof jwk === "string" ? JSON.parse(jwk) : jwk;
  return "key_ops" in pub ? { ...pub, key_ops: ["verify"] } : pub;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = join(resolve(import.meta.dirname, ".."), ".dev.vars");
  const current = existsSync(file) ? readFileSync(file, "utf8") : "";
  if (/^AUTH_SIGNING_KEY=/m.test(current)) {
    console.log("edgekit: .dev.vars already has AUTH_SIGNING_KEY");
  } else {
    const prefix = current && !current.endsWith("\n") ? "\n" : "";
    appendFileSync(file, `${prefix}AUTH_SIGNING_KEY='${JSON.stringify(generateSigningJwk())}'\n`);
    console.log("edgekit: wrote a development AUTH_SIGNING_KEY to .dev.vars");
  }
}
