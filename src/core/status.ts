/**
 * What `serverstatus` shows of one slice: its `getStatus()` (Inmanta's `get_status()`), asked
 * with a deadline and made safe to serialise, so that one slow or broken slice cannot break the
 * status page of the whole server.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ServerSlice } from "../slices/slice.ts";

/** How long a slice's `getStatus()` may take before the status page goes on without it. */
export const STATUS_TIMEOUT_MS = 2000;

/**
 * The slice's `getStatus()` as a plain JSON object. A failure, a value that is not an object
 * or not JSON, or an answer later than {@link STATUS_TIMEOUT_MS} gives `{"error": "..."}` and a
 * warning naming the slice.
 *
 * @param slice the slice asked
 * @param log where a failure is written
 */
export async function sliceStatus(
  slice: ServerSlice,
  log: Logger,
): Promise<Record<string, unknown>> {
  const problem = (why: string) => {
    log.warning(`slice ${slice.name}: getStatus() ${why}`);
    return { error: `getStatus() ${why}` };
  };
  let value: unknown;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    value = await Promise.race([
      Promise.resolve().then(() => slice.getStatus()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new StatusTimeout()), STATUS_TIMEOUT_MS);
      }),
    ]);
  } catch (error) {
    return problem(
      error instanceof StatusTimeout
        ? `did not answer within ${STATUS_TIMEOUT_MS / 1000}s`
        : `failed: ${describeError(error)}`,
    );
  } finally {
    clearTimeout(timer);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return problem("did not return an object");
  }
  try {
    return JSON.parse(JSON.stringify(value));
  } catch (error) {
    return problem(`returned a value that is not JSON: ${describeError(error)}`);
  }
}

class StatusTimeout extends Error {}
