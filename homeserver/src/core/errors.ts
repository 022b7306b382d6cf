/** A Matrix error: the spec's `{errcode, error}` body with its HTTP status. */
export class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    /** Extra top-level fields of the error body (e.g. `retry_after_ms`, `soft_logout`). */
    readonly extra: Record<string, unknown> = {},
    /** Extra response headers (e.g. `Retry-After`). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'MatrixError';
  }

  body(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

export const forbidden = (msg = 'Forbidden') => new MatrixError(403, 'M_FORBIDDEN', msg);
export const notFound = (msg = 'Not found') => new MatrixError(404, 'M_NOT_FOUND', msg);
export const badJson = (msg: string) => new MatrixError(400, 'M_BAD_JSON', msg);
export const notJson = (msg = 'Content not JSON.') => new MatrixError(400, 'M_NOT_JSON', msg);
export const missingParam = (name: string) => new MatrixError(400, 'M_MISSING_PARAM', `Missing parameter: ${name}`);
export const invalidParam = (msg: string) => new MatrixError(400, 'M_INVALID_PARAM', msg);
export const unrecognized = (msg = 'Unrecognized request', status = 404) =>
  new MatrixError(status, 'M_UNRECOGNIZED', msg);
export const tooLarge = (msg = 'Request too large') => new MatrixError(413, 'M_TOO_LARGE', msg);
export const unknownToken = (msg: string, softLogout: boolean) =>
  new MatrixError(401, 'M_UNKNOWN_TOKEN', msg, { soft_logout: softLogout });
export const missingToken = () => new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
export const limitExceeded = (retryAfterMs: number) =>
  new MatrixError(
    429,
    'M_LIMIT_EXCEEDED',
    'Too many requests',
    { retry_after_ms: retryAfterMs },
    { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  );
