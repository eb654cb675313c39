/**
 * Typed errors. Every error the server raises on bad input carries a stable `code` so that
 * operators, tests and tools can tell causes apart without parsing messages.
 *
 * @module
 */
import type { ErrorCode } from "./error_codes.ts";

/** Base class of every error raised by the server; `code` is stable across releases. */
export class InmantaError extends Error {
  /** Stable machine-readable cause, such as `config.syntax` or `slice.cycle` (src/error_codes.ts). */
  readonly code: ErrorCode;

  /**
   * Makes an error with its stable code.
   *
   * @param code stable machine-readable cause
   * @param message one line naming the file, option, extension or slice and the cause
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration file or option is invalid; the message names the file and line or option. */
export class ConfigError extends InmantaError {}

/** An extension could not be found, imported, checked or set up; the message names it. */
export class ExtensionError extends InmantaError {}

/**
 * An extension claimed a URL or static location another extension owns (first owner wins, core
 * first); `extension` is the one that lost.
 */
export class OwnershipError extends ExtensionError {
  /** The extension whose claim was refused. */
  readonly extension: string;

  /**
   * @param code stable machine-readable cause
   * @param extension the extension whose claim was refused
   * @param message one line naming both owners and the URL
   */
  constructor(code: ErrorCode, extension: string, message: string) {
    super(code, message);
    this.extension = extension;
  }
}

/** A slice is invalid, its dependencies cannot be ordered, or its lifecycle failed. */
export class SliceError extends InmantaError {}

/** The method table is inconsistent: a duplicate or missing handler, or a bad declaration. */
export class ProtocolError extends InmantaError {}

/**
 * Thrown by a handler to answer with its own status. The message is sent to the client as
 * `{"message": "..."}`, so it must not hold secrets.
 *
 * @example
 * ```ts
 * import { HttpError } from "@inmanta/server";
 * throw new HttpError(404, "no such environment");
 * ```
 */
export class HttpError extends InmantaError {
  /** The HTTP status to answer with. */
  readonly status: number;

  /**
   * Makes an error with its status (400-599) and the message sent to the client.
   *
   * @param status an HTTP status from 400 to 599
   * @param message sent to the client
   */
  constructor(status: number, message: string) {
    super(`http.${status}`, message);
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`HttpError status must be 400-599, got ${status}`);
    }
    this.status = status;
  }
}

/** One line for a thrown value, without a stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * The database refused or failed something: a statement (timed out, refused, failed), a
 * migration, the provisioning of an extension's schema. The message names the extension.
 */
export class DatabaseError extends InmantaError {}
