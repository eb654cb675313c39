/**
 * The options of authentication, apart from the token code so that declaring them loads no
 * cryptography.
 *
 * @module
 */
import type { Config } from "../config/config.ts";

/** The claim that lists a token's client types. */
export const CLIENT_TYPE_CLAIM = "urn:inmanta:ct";

/** The section of the token options (as Inmanta's `auth_jwt_default`). */
export const AUTH_SECTION = "auth_jwt_default";

/** Registers the auth options. */
export function registerAuthOptions(config: Config): void {
  config.registerDefaultOptions("server", {
    auth: { type: "bool", default: false, help: "require a JWT for methods that enforce auth" },
  });
  config.registerDefaultOptions(AUTH_SECTION, {
    algorithm: {
      type: "string",
      default: "HS256",
      help: "HS256 (with key) or the JWKS's algorithm",
    },
    key: {
      type: "string",
      default: "",
      help: "the HS256 secret that signs and verifies tokens",
      secret: true,
    },
    jwks_file: { type: "string", default: "", help: "a JWKS file of public keys to verify tokens" },
    issuer: { type: "string", default: "https://localhost:8888/", help: "the tokens' iss" },
    audience: { type: "string", default: "", help: "the tokens' aud (default: the issuer)" },
    expire: { type: "duration", default: 0, help: "lifetime of issued tokens; 0 never expires" },
  });
}
