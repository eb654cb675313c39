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
  return Response.json({ message }, { status, headers });
}
