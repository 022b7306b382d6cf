// Errors a request can end with; sent as `{ id, error: { code, message } }` (protocol-spec/sfu-signalling.md).

export type ErrorCode =
  /** The message or its params are malformed (not JSON, wrong types, bad RTP parameters, ...). */
  | 'bad_request'
  | 'unknown_method'
  /** The method needs a joined call (everything but getRouterRtpCapabilities and join). */
  | 'not_joined'
  | 'already_joined'
  /** The call token is missing, forged, expired, for another audience or issuer. */
  | 'unauthorized'
  /** The token is valid but not for this room. */
  | 'forbidden'
  | 'call_full'
  /** A per-participant limit (producers, consumers, one transport per direction, one producer per source). */
  | 'limit_exceeded'
  /** No such transport / producer / consumer (or it belongs to someone else). */
  | 'not_found'
  /** The client's RTP capabilities cannot receive that producer. */
  | 'cannot_consume'
  /** The media server is restarting (a worker died); retry the join. */
  | 'unavailable'
  | 'internal';

export class SfuError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SfuError';
  }
}
