/**
 * HTTPS to a federation peer at an address we already resolved and vetted: the connection goes to
 * that IP (never re-resolved by the HTTP stack, so DNS cannot swap in a private address after our
 * check), with the SNI and certificate name the spec's resolution step chose. Bodies are capped and
 * every request has a deadline. No retries: callers (the send queue) own back-off.
 */
import fs from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';

/** One address to try; a resolution may yield several (tried in order while connecting fails). */
export interface PinnedTarget {
  address: string;
  family: 4 | 6;
  port: number;
}

export interface TransportRequest {
  targets: readonly PinnedTarget[];
  /** SNI and the name the certificate must be valid for; unset for IP literals (no SNI, IP certificate). */
  tlsServername?: string;
  hostHeader: string;
  method: string;
  /** Path and query exactly as sent (and signed). */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  timeoutMs: number;
  maxBytes: number;
}

export interface TransportResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type TransportErrorKind = 'connect' | 'tls' | 'timeout' | 'too_large' | 'protocol';

export class TransportError extends Error {
  constructor(
    readonly kind: TransportErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransportError';
  }
}

export interface TransportOptions {
  /** Extra PEM CA bundle trusted besides the system store. */
  caFile?: string;
  /** Skip certificate verification (tests only). */
  insecure: boolean;
}

// Errors raised before any request byte could have reached the peer: the next address may be tried.
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ECONNRESET']);
const TLS_ERROR = /^(ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_SSL_|HOSTNAME_MISMATCH)/;

export class FederationTransport {
  private readonly agent: https.Agent;
  private readonly ca: string[] | undefined;
  private readonly insecure: boolean;

  constructor(opts: TransportOptions) {
    this.ca = opts.caFile ? [...tls.rootCertificates, fs.readFileSync(opts.caFile, 'utf8')] : undefined;
    this.insecure = opts.insecure;
    // Connections are reused per (address, port, servername): a transaction stream to one peer
    // does not pay a TLS handshake per request.
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 16 });
  }

  async request(req: TransportRequest): Promise<TransportResponse> {
    if (req.targets.length === 0) throw new TransportError('connect', 'no address to connect to');
    const deadline = Date.now() + req.timeoutMs;
    let lastError: unknown;
    for (const target of req.targets) {
      try {
        return await this.once(req, target, deadline);
      } catch (err) {
        lastError = err;
        if (!(err instanceof TransportError && err.kind === 'connect')) throw err;
      }
    }
    throw lastError;
  }

  close(): void {
    this.agent.destroy();
  }

  private once(req: TransportRequest, target: PinnedTarget, deadline: number): Promise<TransportResponse> {
    return new Promise<TransportResponse>((resolve, reject) => {
      let settled = false;
      let connected = false;
      const fail = (err: TransportError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
        r.destroy();
      };
      const r = https.request({
        agent: this.agent,
        host: target.address,
        family: target.family,
        port: target.port,
        // tls.connect checks the certificate against `servername` when given, else against `host` (the IP).
        servername: req.tlsServername,
        ca: this.ca,
        rejectUnauthorized: !this.insecure,
        method: req.method,
        path: req.path,
        headers: { ...req.headers, host: req.hostHeader, ...(req.body ? { 'content-length': String(req.body.length) } : {}) },
      });
      const timer = setTimeout(() => fail(new TransportError('timeout', `no complete answer within ${req.timeoutMs} ms`)), Math.max(0, deadline - Date.now()));
      r.on('socket', (socket) => {
        // A reused keep-alive socket is connected already and never emits secureConnect again:
        // listening on it would add one more listener per request (MaxListenersExceededWarning).
        if (!socket.connecting) connected = true;
        else socket.once('secureConnect', () => (connected = true));
      });
      r.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? '';
        if (TLS_ERROR.test(code) || /certificate|altnames|SSL/i.test(err.message)) {
          fail(new TransportError('tls', `TLS failed: ${err.message}`, { cause: err }));
        } else if (!connected && CONNECT_ERRORS.has(code)) {
          fail(new TransportError('connect', `cannot connect to ${target.address}:${target.port}: ${code}`, { cause: err }));
        } else {
          fail(new TransportError('protocol', `request failed: ${err.message}`, { cause: err }));
        }
      });
      r.on('response', (res) => {
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > req.maxBytes) {
          fail(new TransportError('too_large', `response of ${declared} bytes exceeds ${req.maxBytes}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > req.maxBytes) fail(new TransportError('too_large', `response exceeds ${req.maxBytes} bytes`));
          else chunks.push(chunk);
        });
        res.on('error', (err) => fail(new TransportError('protocol', `response failed: ${err.message}`, { cause: err })));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
      });
      r.end(req.body);
    });
  }
}
