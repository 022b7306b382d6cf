/**
 * Outgoing federation requests: resolve the destination (resolver.ts), connect to the vetted
 * address over verified TLS (transport.ts), sign with X-Matrix, and return the strict-parsed
 * JSON answer or a typed FederationError. No retries: the send queue owns back-off.
 */
import type { Logger } from '../../core/logger.js';
import { CanonicalJsonError, encodeCanonicalJson, parseStrictJson, type JsonObject, type JsonValue } from '../../core/canonical_json.js';
import type { ServerNameAccess } from './server_name.js';
import { ResolveError, type ServerResolver } from './resolver.js';
import { TransportError, type FederationTransport, type TransportResponse } from './transport.js';
import { signRequest, type RequestSigner } from './x_matrix.js';

export type FederationErrorKind =
  /** Federation is switched off (HEARTH_FEDERATION_ENABLED=false). */
  | 'disabled'
  /** The allow/deny list refuses the destination. */
  | 'denied'
  | 'invalid_name'
  | 'dns'
  /** The destination resolves only to private/loopback/… addresses. */
  | 'private_address'
  | 'connect'
  | 'tls'
  | 'timeout'
  | 'too_large'
  | 'protocol'
  /** A 2xx answer that is not a strict JSON object. */
  | 'bad_response'
  /** The remote answered with an error status; `status`, `errcode` and `remoteError` say which. */
  | 'remote';

export class FederationError extends Error {
  constructor(
    readonly kind: FederationErrorKind,
    readonly destination: string,
    message: string,
    readonly status?: number,
    /** The remote's Matrix errcode, when it sent a Matrix error body. */
    readonly errcode?: string,
    readonly remoteError?: string,
  ) {
    super(`${destination}: ${message}`);
    this.name = 'FederationError';
  }
}

export type QueryValue = string | number | boolean | readonly (string | number | boolean)[];

export interface FederationRequest {
  destination: string;
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path starting with `/_matrix/`, path parameters already percent-encoded. */
  path: string;
  query?: Record<string, QueryValue | undefined>;
  /** A JSON object body (PUT/POST); sent as canonical JSON and signed as `content`. */
  body?: JsonObject;
  /** Defaults to the configured request timeout / response cap. */
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export interface FederationClientOptions {
  enabled: boolean;
  signer: RequestSigner;
  resolver: ServerResolver;
  transport: FederationTransport;
  access: ServerNameAccess;
  requestTimeoutMs: number;
  maxResponseBytes: number;
  logger: Logger;
}

/** `?a=1&b=x%20y` (RFC 3986 percent-encoding); arrays repeat the name. Exactly what is sent and signed. */
export function encodeQuery(query: Record<string, QueryValue | undefined> | undefined): string {
  if (!query) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    for (const item of Array.isArray(v) ? v : [v]) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(item))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

export class FederationClient {
  constructor(private readonly opts: FederationClientOptions) {}

  /** This server's name (the `origin` of everything we send). */
  get serverName(): string {
    return this.opts.signer.serverName;
  }

  async request(req: FederationRequest): Promise<JsonObject> {
    const res = await this.send(req, 'application/json');
    return this.parseAnswer(req, res);
  }

  /**
   * As `request`, but a 2xx answer is returned as raw bytes with its headers (media downloads:
   * `multipart/mixed`); an error status is still a `remote` FederationError.
   */
  async requestRaw(req: FederationRequest): Promise<TransportResponse> {
    const res = await this.send(req, '*/*');
    if (res.status < 200 || res.status >= 300) this.parseAnswer(req, res);
    return res;
  }

  private async send(req: FederationRequest, accept: string): Promise<TransportResponse> {
    const { destination } = req;
    if (!this.opts.enabled) throw new FederationError('disabled', destination, 'federation is disabled');
    if (!this.opts.access.isAllowed(destination)) throw new FederationError('denied', destination, 'not allowed by the federation allow/deny lists');
    let resolved;
    try {
      resolved = await this.opts.resolver.resolve(destination);
    } catch (err) {
      if (err instanceof ResolveError) throw new FederationError(err.kind, destination, err.message);
      throw err;
    }
    const uri = req.path + encodeQuery(req.query);
    const bodyText = req.body === undefined ? undefined : encodeCanonicalJson(req.body);
    const authorization = signRequest(this.opts.signer, { method: req.method, uri, destination, content: req.body });
    let res;
    try {
      res = await this.opts.transport.request({
        targets: resolved.targets,
        tlsServername: resolved.tlsServername,
        hostHeader: resolved.hostHeader,
        method: req.method,
        path: uri,
        headers: {
          authorization,
          accept,
          'user-agent': 'Hearth',
          ...(bodyText !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: bodyText === undefined ? undefined : Buffer.from(bodyText, 'utf8'),
        timeoutMs: req.timeoutMs ?? this.opts.requestTimeoutMs,
        maxBytes: req.maxResponseBytes ?? this.opts.maxResponseBytes,
      });
    } catch (err) {
      if (err instanceof TransportError) throw new FederationError(err.kind, destination, err.message);
      throw err;
    }
    return res;
  }

  /** The strict-parsed JSON object of a 2xx answer; any other status throws a `remote` FederationError. */
  private parseAnswer(req: FederationRequest, res: TransportResponse): JsonObject {
    const { destination } = req;
    let parsed: JsonValue | undefined;
    let parseError: string | undefined;
    try {
      parsed = parseStrictJson(res.body);
    } catch (err) {
      parseError = err instanceof CanonicalJsonError ? err.message : String(err);
    }
    const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
    if (res.status < 200 || res.status >= 300) {
      const body = isObject ? (parsed as JsonObject) : {};
      const errcode = typeof body.errcode === 'string' ? body.errcode : undefined;
      const error = typeof body.error === 'string' ? body.error : undefined;
      this.opts.logger.debug({ destination, method: req.method, path: req.path, status: res.status, errcode }, 'federation request refused by remote');
      throw new FederationError('remote', destination, `${req.method} ${req.path} answered ${res.status}${errcode ? ` ${errcode}` : ''}${error ? `: ${error}` : ''}`, res.status, errcode, error);
    }
    if (!isObject) throw new FederationError('bad_response', destination, `${req.method} ${req.path}: ${parseError ?? 'answer is not a JSON object'}`, res.status);
    return parsed as JsonObject;
  }
}
