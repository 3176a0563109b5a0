// Test keys and JWTs for the gateway, made with node's own crypto (no JWT library): one key per algorithm the gateway
// verifies (EdDSA, RS256, ES256, HS256), their public JWKS, and a signer that can also forge broken tokens.
import { createHmac, generateKeyPairSync, randomBytes, sign } from "node:crypto";

export const b64url = (data) => Buffer.from(typeof data === "string" ? data : data).toString("base64url");
export const json64 = (value) => b64url(JSON.stringify(value));

/** Makes the four test keys. `kid` prefixes let a test make a second, rotated set. */
export function makeKeys(prefix = "") {
  const ed = generateKeyPairSync("ed25519");
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const secret = randomBytes(32);
  const keys = {
    [`${prefix}ed1`]: { alg: "EdDSA", privateKey: ed.privateKey, publicJwk: ed.publicKey.export({ format: "jwk" }) },
    [`${prefix}rsa1`]: { alg: "RS256", privateKey: rsa.privateKey, publicJwk: rsa.publicKey.export({ format: "jwk" }) },
    [`${prefix}ec1`]: { alg: "ES256", privateKey: ec.privateKey, publicJwk: ec.publicKey.export({ format: "jwk" }) },
    [`${prefix}hs1`]: { alg: "HS256", secret, publicJwk: { kty: "oct", k: b64url(secret) } },
  };
  return keys;
}

/** The JWKS document for `keys` (each with its kid and alg, as an operator would publish it). */
export function jwksOf(...keySets) {
  return {
    keys: keySets.flatMap((keys) =>
      Object.entries(keys).map(([kid, k]) => ({ ...k.publicJwk, kid, alg: k.alg, use: "sig" })),
    ),
  };
}

/** Signs `signingInput` with key `k` as algorithm `alg` (which may differ from the key's, to forge confusion). */
export function signWith(alg, k, signingInput) {
  switch (alg) {
    case "EdDSA":
      return sign(null, Buffer.from(signingInput), k.privateKey);
    case "RS256":
      return sign("sha256", Buffer.from(signingInput), k.privateKey);
    case "ES256":
      return sign("sha256", Buffer.from(signingInput), { key: k.privateKey, dsaEncoding: "ieee-p1363" });
    case "HS256":
      return createHmac("sha256", k.secret).update(signingInput).digest();
    default:
      return Buffer.from("not-a-signature");
  }
}

/** Standard claims for the test issuer/audience (wrangler.toml JWT_ISSUER/JWT_AUDIENCE), now-relative. */
export function claims(overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  const base = {
    iss: "edgekit",
    aud: "edgekit-api",
    sub: "user-1",
    email: "user-1@example.com",
    permissions: ["read"],
    iat: now,
    exp: now + 600,
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

/** A token signed by key `kid` of `keys`; `header` overrides header fields (kid: undefined drops it). */
export function token(keys, kid, claimOverrides = {}, { header = {}, alg, signer } = {}) {
  const k = keys[kid];
  const h = { alg: alg ?? k.alg, typ: "JWT", kid, ...header };
  for (const [name, v] of Object.entries(header)) if (v === undefined) delete h[name];
  const input = `${json64(h)}.${json64(claims(claimOverrides))}`;
  const signature = (signer ?? ((i) => signWith(h.alg, k, i)))(input);
  return `${input}.${b64url(signature)}`;
}
