/**
 * One status vocabulary for every failure in upnext, whether it crossed gRPC, a NATS reply or a
 * worker thread. Codes are gRPC's (https://grpc.github.io/grpc/core/md_doc_statuscodes.html), so a
 * status maps 1:1 onto the public RPC's status. Errors cross realms as plain {@link StatusObject}s,
 * never by `instanceof`.
 */
export enum StatusCode {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** A failure as plain data: safe to postMessage, to encode in a reply, or to log. */
export interface StatusObject {
  readonly code: StatusCode;
  readonly message: string;
  /** Optional machine-readable detail (e.g. the offending field name). */
  readonly details?: string;
}

/** The one error class upnext throws; carries a gRPC status code. */
export class UpnextError extends Error {
  readonly code: StatusCode;
  readonly details: string | undefined;

  constructor(code: StatusCode, message: string, details?: string) {
    super(message);
    this.name = `UpnextError[${StatusCode[code] ?? code}]`;
    this.code = code;
    this.details = details;
  }

  /** Plain-data form for crossing a thread or process boundary. */
  toStatus(): StatusObject {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  static fromStatus(status: StatusObject): UpnextError {
    return new UpnextError(status.code, status.message, status.details);
  }
}

/** True when `value` has the shape of a {@link StatusObject} (structural, realm-independent). */
export function isStatusObject(value: unknown): value is StatusObject {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { code?: unknown; message?: unknown };
  return typeof v.code === 'number' && typeof v.message === 'string';
}

/** Converts anything thrown into a status: upnext errors keep their code, the rest are INTERNAL. */
export function toStatus(err: unknown): StatusObject {
  if (err instanceof UpnextError) return err.toStatus();
  if (isStatusObject(err)) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: StatusCode.INTERNAL, message: err.message };
  return { code: StatusCode.INTERNAL, message: String(err) };
}

/** INVALID_ARGUMENT naming the field, e.g. `invalidArgument('k', 'must be in 1..1000, got 0')`. */
export function invalidArgument(field: string, why: string): UpnextError {
  return new UpnextError(StatusCode.INVALID_ARGUMENT, `${field}: ${why}`, field);
}

export function unavailable(message: string): UpnextError {
  return new UpnextError(StatusCode.UNAVAILABLE, message);
}

export function deadlineExceeded(message: string): UpnextError {
  return new UpnextError(StatusCode.DEADLINE_EXCEEDED, message);
}

export function failedPrecondition(message: string): UpnextError {
  return new UpnextError(StatusCode.FAILED_PRECONDITION, message);
}
