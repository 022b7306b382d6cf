// A small JSON-over-HTTP client for the bench: one keep-alive agent with room for every long-poll,
// loopback only, and a hard cap on the number of requests so a run is bounded.
import http from 'node:http';

export interface JsonResponse {
  status: number;
  // Sync and send answers are read loosely: the bench only looks at a few fields.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  signal?: AbortSignal;
  /** Fails the request after this long (default 120 s). */
  timeoutMs?: number;
}

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

export class RequestBudgetExceeded extends Error {}

export class BenchHttp {
  readonly agent: http.Agent;
  private readonly url: URL;
  requests = 0;

  constructor(
    baseUrl: string,
    private readonly maxRequests: number,
    maxSockets: number,
  ) {
    this.url = new URL(baseUrl);
    if (!LOOPBACK.has(this.url.hostname)) throw new Error(`the bench only talks to loopback addresses, not ${this.url.hostname}`);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, keepAliveMsecs: 10_000 });
  }

  request(method: string, path: string, opts: RequestOptions = {}): Promise<JsonResponse> {
    if (++this.requests > this.maxRequests) {
      return Promise.reject(new RequestBudgetExceeded(`request budget of ${this.maxRequests} exhausted`));
    }
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: this.url.hostname, port: this.url.port, method, path, headers, agent: this.agent, signal: opts.signal },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            try {
              body = text.length ? JSON.parse(text) : undefined;
            } catch {
              /* leave the text */
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
        },
      );
      req.setTimeout(opts.timeoutMs ?? 120_000, () => req.destroy(new Error(`${method} ${path.split('?')[0]} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like `request`, but anything other than 200 is an error naming the call. */
  async ok(method: string, path: string, opts: RequestOptions = {}): Promise<JsonResponse['body']> {
    const res = await this.request(method, path, opts);
    if (res.status !== 200) throw new Error(`${method} ${path.split('?')[0]}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    return res.body;
  }

  close(): void {
    this.agent.destroy();
  }
}
