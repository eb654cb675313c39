/**
 * Authentication and authorization as Inmanta operators know them: with `server.auth = true`,
 * every method that enforces auth needs a JWT (`Authorization: Bearer ...`) signed with the
 * configured HS256 key or verifiable with the configured JWKS file, whose client-type claim
 * `urn:inmanta:ct` includes one of the method's client types.
 *
 * @module
 */
import {
  createLocalJWKSet,
  type JSONWebKeySet,
  jwtVerify,
  type JWTVerifyGetKey,
  SignJWT,
} from "jose";
import type { Config } from "../config/config.ts";
import { ConfigError, HttpError } from "../errors.ts";
import { AUTH_SECTION, CLIENT_TYPE_CLAIM } from "./options.ts";

/** Verifies bearer tokens against the configured key. */
export class Authenticator {
  readonly #key: Uint8Array | JWTVerifyGetKey;
  readonly #issuer: string;
  readonly #audience: string;

  private constructor(key: Uint8Array | JWTVerifyGetKey, issuer: string, audience: string) {
    this.#key = key;
    this.#issuer = issuer;
    this.#audience = audience;
  }

  /** The authenticator `config` asks for, or undefined when `server.auth` is off. */
  static async fromConfig(config: Config): Promise<Authenticator | undefined> {
    if (!config.bool("server", "auth")) return undefined;
    const issuer = config.string(AUTH_SECTION, "issuer");
    const audience = config.string(AUTH_SECTION, "audience") || issuer;
    const jwksFile = config.string(AUTH_SECTION, "jwks_file");
    if (jwksFile) {
      let jwks: JSONWebKeySet;
      try {
        jwks = JSON.parse(await Deno.readTextFile(jwksFile));
      } catch (error) {
        throw new ConfigError(
          "config.jwks",
          `${AUTH_SECTION}.jwks_file = ${jwksFile}: ${(error as Error).message.split("\n")[0]}`,
        );
      }
      return new Authenticator(createLocalJWKSet(jwks), issuer, audience);
    }
    return new Authenticator(hmacKey(config), issuer, audience);
  }

  /**
   * Checks the request's token against `clientTypes`: 401 without a valid token, 403 when its
   * client types do not include one of them.
   */
  async check(request: Request, clientTypes: readonly string[]): Promise<void> {
    const header = request.headers.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      throw new HttpError(401, "authorization required: send Authorization: Bearer <token>");
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(match[1], this.#key as Uint8Array, {
        issuer: this.#issuer,
        audience: this.#audience,
      }));
    } catch (error) {
      throw new HttpError(401, `invalid token: ${(error as Error).message}`);
    }
    const claim = payload[CLIENT_TYPE_CLAIM];
    const types = Array.isArray(claim)
      ? claim.map(String)
      : typeof claim === "string"
      ? claim.split(",").map((s) => s.trim())
      : [];
    if (!clientTypes.some((t) => types.includes(t))) {
      throw new HttpError(
        403,
        `this method is for client types ${clientTypes.join(", ")}; the token has ${
          types.join(", ") || "none"
        }`,
      );
    }
  }
}

function hmacKey(config: Config): Uint8Array {
  const algorithm = config.string(AUTH_SECTION, "algorithm");
  if (algorithm !== "HS256") {
    throw new ConfigError(
      "config.auth",
      `${AUTH_SECTION}.algorithm = ${algorithm}: only HS256 signs with a key; use jwks_file for others`,
    );
  }
  const key = config.string(AUTH_SECTION, "key");
  if (key.length < 32) {
    throw new ConfigError(
      "config.auth",
      `${AUTH_SECTION}.key must be set to a secret of at least 32 characters when server.auth is on`,
    );
  }
  return new TextEncoder().encode(key);
}

/** Issues a token for `clientTypes`, signed with the configured HS256 key. */
export async function issueToken(config: Config, clientTypes: string[]): Promise<string> {
  const issuer = config.string(AUTH_SECTION, "issuer");
  const jwt = new SignJWT({ [CLIENT_TYPE_CLAIM]: clientTypes })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(issuer)
    .setAudience(config.string(AUTH_SECTION, "audience") || issuer)
    .setIssuedAt();
  const expire = config.duration(AUTH_SECTION, "expire");
  if (expire > 0) jwt.setExpirationTime(Math.floor(Date.now() / 1000 + expire));
  return await jwt.sign(hmacKey(config));
}
