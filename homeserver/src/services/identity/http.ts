/**
 * One HTTP(S) request to an identity server (or a `key_validity_url` it handed out): a deadline, a
 * cap on the answer, and the address rule the push gateway and federation follow — loopback,
 * private, link-local… addresses are refused unless allowed, checked in the socket's own lookup so
 * DNS cannot hand the connection another address than the one vetted. No retries.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { isPrivateAddress, vettedLookup } from '../federation/ip_ranges.js';

export interface IdentityHttpOptions {
  timeoutMs: number;
  maxResponseBytes: number;
  allowPrivateAddresses: boolean;
  /** Extra PEM CA bundle trusted besides the system store. */
  caFile?: string;
}

export interface IdentityHttpResponse {
  status: number;
  body: Buffer;
}

export type IdentityHttpFailure = 'refused_address' | 'connect' | 'timeout' | 'too_large' | 'bad_url';

/** The request never got an HTTP answer (or one too large to read). */
export class IdentityHttpError extends Error {
  constructor(
    readonly kind: IdentityHttpFailure,
    message: string,
  ) {
    super(message);
    this.name = 'IdentityHttpError';
  }
}

export class IdentityHttp {
  private readonly ca: string[] | undefined;

  constructor(private readonly opts: IdentityHttpOptions) {
    this.ca = opts.caFile ? [...tls.rootCertificates, fs.readFileSync(opts.caFile, 'utf8')] : undefined;
  }

  request(url: string, init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: unknown }): Promise<IdentityHttpResponse> {
    const { opts } = this;
    return new Promise((resolve, reject) => {
      let u: URL;
      try {
        u = new URL(url);
        if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
      } catch {
        reject(new IdentityHttpError('bad_url', 'not an http(s) URL'));
        return;
      }
      const host = u.hostname.replace(/^\[|\]$/g, '');
      if (!opts.allowPrivateAddresses && net.isIP(host) && isPrivateAddress(host)) {
        reject(new IdentityHttpError('refused_address', 'the identity server is at an address this server does not connect to'));
        return;
      }
      const lookup = vettedLookup(opts.allowPrivateAddresses, 'address not allowed');
      const payload = init.body === undefined ? undefined : Buffer.from(JSON.stringify(init.body));
      const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
      if (payload) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(payload.length) });
      let settled = false;
      const finish = (err: IdentityHttpError | null, res?: IdentityHttpResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(res!);
      };
      const mod = u.protocol === 'https:' ? https : http;
      const req = mod.request(u, { method: init.method, headers, lookup, agent: false, ...(this.ca && u.protocol === 'https:' ? { ca: this.ca } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > opts.maxResponseBytes) {
            req.destroy();
            finish(new IdentityHttpError('too_large', `the answer is larger than ${opts.maxResponseBytes} bytes`));
          } else chunks.push(c);
        });
        res.on('error', () => finish(new IdentityHttpError('connect', 'the answer was cut off')));
        res.on('end', () => finish(null, { status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      });
      const timer = setTimeout(() => {
        req.destroy();
        finish(new IdentityHttpError('timeout', `no answer within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EHEARTHPRIVATE') finish(new IdentityHttpError('refused_address', 'the identity server is at an address this server does not connect to'));
        else finish(new IdentityHttpError('connect', err.code ?? 'request failed'));
      });
      req.end(payload);
    });
  }
}
