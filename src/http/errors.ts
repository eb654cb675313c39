/**
 * The one builder of error answers: `{"message": "..."}` with a status, as every failure the
 * server or a sandbox sends looks (DESIGN.md, Endpoints).
 *
 * @module
 */

/**
 * An error answer.
 *
 * @param status the HTTP status
 * @param message one line for the client (never a stack)
 * @param headers extra headers, such as `Retry-After` or `Allow`
 */
export function errorResponse(status: number, message: string, headers?: HeadersInit): Response {
  // Concatenated, not Response.json({ message }): no object to build and stringify per answer,
  // which the 404 path pays under load.
  const body = `{"message":${JSON.stringify(message)}}`;
  if (headers === undefined) return new Response(body, { status, headers: JSON_TYPE });
  // Set before the Response is built: a string body would otherwise get text/plain.
  const merged = new Headers(headers);
  if (!merged.has("content-type")) merged.set("content-type", JSON_TYPE_VALUE);
  return new Response(body, { status, headers: merged });
}

const JSON_TYPE_VALUE = "application/json";
const JSON_TYPE: HeadersInit = { "content-type": JSON_TYPE_VALUE };
