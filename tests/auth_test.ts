/**
 * Authentication, authorization and TLS against a real server: JWTs (HS256 key or JWKS file)
 * with the `urn:inmanta:ct` client-type claim, `deno task token`, HTTPS from PEM files.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import * as kit from "@inmanta/server/testing";
import { getJson, PROJECT, startServer, tempDir, writeExtension } from "./helpers.ts";

const KEY = "a-test-secret-that-is-long-enough-1234567890";
const ISSUER = "https://localhost:8888/";

const AGENT_ONLY = `import { handle, method, ServerSlice } from "@inmanta/server";
export const report = method({ path: "/report", operation: "GET", clientTypes: ["agent"] });
class R extends ServerSlice { @handle(report) report() { return "reported"; } }
export function setup(app) { app.registerSlice(new R("agentapi.main")); }
`;

function hs256(claims: Record<string, unknown>, expires?: number): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuer(ISSUER)
    .setAudience(ISSUER).setIssuedAt();
  if (expires !== undefined) jwt.setExpirationTime(expires);
  return jwt.sign(new TextEncoder().encode(KEY));
}

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

Deno.test("auth: tokens, client types, open methods", async (t) => {
  await using root = await tempDir();
  await writeExtension(root.path, "agentapi", AGENT_ONLY);
  await using test = await kit.startTestServer({
    extensions: [{ name: "agentapi", path: root.path }],
    config: `[server]\nauth = true\n[auth_jwt_default]\nkey = ${KEY}\n`,
  });
  const status = `${test.url}/api/v1/serverstatus`;
  const report = `${test.url}/api/v2/report`;

  await t.step("no token: 401", async () => {
    const r = await getJson(status);
    assert.deepEqual([r.status, r.body.message], [
      401,
      "authorization required: send Authorization: Bearer <token>",
    ]);
  });
  await t.step("a token with the right client type: 200", async () => {
    const api = await hs256({ "urn:inmanta:ct": ["api"] });
    assert.equal((await getJson(status, bearer(api))).status, 200);
    const agent = await hs256({ "urn:inmanta:ct": ["agent", "compiler"] });
    assert.deepEqual((await getJson(report, bearer(agent))).body, { data: "reported" });
  });
  await t.step("the wrong client type: 403", async () => {
    const api = await hs256({ "urn:inmanta:ct": ["api"] });
    const r = await getJson(report, bearer(api));
    assert.deepEqual([r.status, r.body.message], [
      403,
      "this method is for client types agent; the token has api",
    ]);
  });
  await t.step("a bad signature, an expired token, garbage: 401", async () => {
    const forged = await new SignJWT({ "urn:inmanta:ct": ["api"] }).setProtectedHeader({
      alg: "HS256",
    }).setIssuer(ISSUER).setAudience(ISSUER).sign(new TextEncoder().encode("x".repeat(40)));
    const expired = await hs256({ "urn:inmanta:ct": ["api"] }, Math.floor(Date.now() / 1000) - 60);
    for (const token of [forged, expired, "not-a-jwt"]) {
      const r = await getJson(status, bearer(token));
      assert.equal(r.status, 401);
      assert.match(r.body.message as string, /^invalid token: /);
    }
  });
  await t.step("methods that do not enforce auth stay open", async () => {
    assert.equal((await getJson(`${test.url}/api/v2/health`)).status, 200);
    assert.equal((await getJson(`${test.url}/api/v2/docs/openapi.json`)).status, 200);
  });
  await t.step("deno task token issues a token the server accepts", async () => {
    await using dir = await tempDir();
    const cfg = join(dir.path, "auth.cfg");
    await Deno.writeTextFile(cfg, `[server]\nauth = true\n[auth_jwt_default]\nkey = ${KEY}\n`);
    const task = JSON.parse(await Deno.readTextFile(join(PROJECT, "deno.json"))).tasks.token;
    const flags = (task as string).split(" ").slice(2, -1).map((f) =>
      f.startsWith("--allow-read=") ? `${f},${dir.path}` : f
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, "src/auth/token_cli.ts", "--client-type", "agent", "--config", cfg],
      cwd: PROJECT,
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const token = new TextDecoder().decode(out.stdout).trim();
    assert.deepEqual((await getJson(report, bearer(token))).body, { data: "reported" });
  });
});

Deno.test("auth: tokens verified with a JWKS file", async () => {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  await using dir = await tempDir();
  const jwks = join(dir.path, "jwks.json");
  await Deno.writeTextFile(
    jwks,
    JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: "RS256", kid: "k1" }] }),
  );
  await using test = await startServer({
    config: `[server]\nauth = true\n[auth_jwt_default]\njwks_file = ${jwks}\n`,
  });
  const token = await new SignJWT({ "urn:inmanta:ct": "api" })
    .setProtectedHeader({ alg: "RS256", kid: "k1" }).setIssuer(ISSUER).setAudience(ISSUER)
    .sign(privateKey);
  assert.equal((await getJson(`${test.url}/api/v1/serverstatus`, bearer(token))).status, 200);
  const hs = await hs256({ "urn:inmanta:ct": ["api"] });
  assert.equal((await getJson(`${test.url}/api/v1/serverstatus`, bearer(hs))).status, 401);
});

Deno.test("auth: a missing or short key is a start-up error", async () => {
  const test = await startServer({ config: "[server]\nauth = true\n", start: false });
  await assert.rejects(
    test.server.start(),
    /auth_jwt_default\.key must be set to a secret of at least 32 characters/,
  );
});

Deno.test("TLS: HTTPS from ssl_cert_file and ssl_key_file", async () => {
  await using dir = await tempDir();
  const cert = join(dir.path, "cert.pem");
  const key = join(dir.path, "key.pem");
  // A CA and a server certificate it signed (rustls refuses a CA certificate as the server's).
  const path = (name: string) => join(dir.path, name);
  await Deno.writeTextFile(
    path("ext.cnf"),
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
  );
  const openssl = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
      .output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
  };
  await openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=test-ca",
    "-keyout",
    path("ca.key"),
    "-out",
    path("ca.pem"),
  );
  await openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    key,
    "-out",
    path("leaf.csr"),
  );
  await openssl(
    "x509",
    "-req",
    "-in",
    path("leaf.csr"),
    "-CA",
    path("ca.pem"),
    "-CAkey",
    path("ca.key"),
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    path("ext.cnf"),
    "-out",
    cert,
  );
  await using test = await startServer({
    config: `[server]\nssl_cert_file = ${cert}\nssl_key_file = ${key}\n`,
  });
  assert.match(test.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  using client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(path("ca.pem"))] });
  const response = await fetch(`${test.url}/api/v2/health`, { client });
  assert.deepEqual(await response.json(), { data: { status: "up" } });
});
