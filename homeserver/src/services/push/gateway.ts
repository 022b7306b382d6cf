import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { isPrivateAddress, vettedLookup } from '../federation/ip_ranges.js';

/** Largest gateway answer read (it is `{"rejected": [...]}`). */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** What became of one POST to a push gateway. */
export type GatewayResult =
  | { kind: 'ok'; rejected: string[] }
  /** A 4xx other than 429: the gateway will never accept this notification. */
  | { kind: 'drop'; status: number }
  /** Network error, timeout, 429, 5xx or anything else: try again later. */
  | { kind: 'retry'; reason: string };

export interface GatewayOptions {
  timeoutMs: number;
  /** Off: hosts resolving to loopback/private/link-local addresses are refused (checked on the address connected to). */
  allowPrivateAddresses: boolean;
  signal?: AbortSignal;
}

/**
 * POSTs a notification to a push gateway (push gateway API: POST /_matrix/push/v1/notify). The
 * address check runs in the socket's own lookup, so DNS cannot hand the connection a different
 * address than the one vetted.
 */
export function postNotification(url: string, body: unknown, opts: GatewayOptions): Promise<GatewayResult> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve({ kind: 'drop', status: 0 });
      return;
    }
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (!opts.allowPrivateAddresses && net.isIP(host) && isPrivateAddress(host)) {
      resolve({ kind: 'retry', reason: 'gateway address not allowed' });
      return;
    }
    const lookup = vettedLookup(opts.allowPrivateAddresses, 'gateway address not allowed');
    const payload = Buffer.from(JSON.stringify(body));
    const mod = u.protocol === 'https:' ? https : http;
    let settled = false;
    const done = (r: GatewayResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const req = mod.request(
      u,
      { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(payload.length) }, lookup, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy();
            done({ kind: 'retry', reason: 'response too large' });
          } else chunks.push(c);
        });
        res.on('error', () => done({ kind: 'retry', reason: 'response error' }));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) done({ kind: 'ok', rejected: rejectedIn(Buffer.concat(chunks)) });
          else if (status >= 400 && status < 500 && status !== 429) done({ kind: 'drop', status });
          else done({ kind: 'retry', reason: `HTTP ${status}` });
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done({ kind: 'retry', reason: 'timeout' });
    }, opts.timeoutMs);
    const onAbort = () => {
      req.destroy();
      done({ kind: 'retry', reason: 'aborted' });
    };
    opts.signal?.addEventListener('abort', onAbort);
    req.on('error', (err: NodeJS.ErrnoException) => done({ kind: 'retry', reason: err.code ?? 'request error' }));
    req.end(payload);
  });
}

function rejectedIn(body: Buffer): string[] {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { rejected?: unknown };
    return Array.isArray(parsed.rejected) ? parsed.rejected.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}
