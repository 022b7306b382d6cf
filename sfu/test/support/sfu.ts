// Starting an SFU in-process for a test, and a Node signalling client for it.
import './worker_bin.js';
import { once } from 'node:events';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { loadSfuConfig, type SfuConfig } from '../../src/config.js';
import { createSfu, type Sfu } from '../../src/server.js';
import type { TokenVerifier } from '../../src/auth.js';

export interface TestSfu {
  sfu: Sfu;
  /** ws://127.0.0.1:PORT/ */
  url: string;
  close(): Promise<void>;
}

/** A config as loadSfuConfig builds it from the given HEARTH_SFU_* values, on 127.0.0.1. */
export function testConfig(env: Record<string, string> = {}): SfuConfig {
  return loadSfuConfig({
    HEARTH_SFU_JWKS_URL: 'http://127.0.0.1:9/jwks.json',
    HEARTH_SFU_ISSUER: 'test.hearth',
    HEARTH_SFU_WORKERS: '1',
    HEARTH_SFU_RTC_MIN_PORT: '42000',
    HEARTH_SFU_RTC_MAX_PORT: '42999',
    HEARTH_SFU_ACTIVE_SPEAKER_INTERVAL_MS: '200',
    ...env,
  });
}

export async function startTestSfu(opts: { env?: Record<string, string>; verifier?: TokenVerifier } = {}): Promise<TestSfu> {
  const config = testConfig(opts.env);
  const logger = pino({ level: process.env.HEARTH_TEST_SFU_LOG ?? 'silent' });
  const sfu = await createSfu({ config, logger, ...(opts.verifier ? { verifier: opts.verifier } : {}) });
  const port = await sfu.listen(0, '127.0.0.1');
  return { sfu, url: `ws://127.0.0.1:${port}/`, close: () => sfu.close() };
}

export interface Notification {
  method: string;
  params: any;
}

/** A signalling client over `ws`: request/response by id, notifications recorded. */
export class SignalClient {
  readonly notifications: Notification[] = [];
  private nextId = 1;
  private readonly pending = new Map<number | string, (msg: any) => void>();
  private readonly waiters: { pred: (n: Notification) => boolean; resolve: (n: Notification) => void }[] = [];
  closeCode: number | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const resolve = this.pending.get(msg.id)!;
        this.pending.delete(msg.id);
        resolve(msg);
      } else if (msg.id === null) {
        this.pending.get('null')?.(msg);
        this.pending.delete('null');
      } else if (typeof msg.method === 'string') {
        const n = { method: msg.method, params: msg.params };
        this.notifications.push(n);
        for (const w of [...this.waiters]) {
          if (w.pred(n)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(n);
          }
        }
      }
    });
    ws.on('close', (code) => {
      this.closeCode = code;
    });
  }

  static async connect(url: string): Promise<SignalClient> {
    const ws = new WebSocket(url);
    await once(ws, 'open');
    return new SignalClient(ws);
  }

  /** The whole response: `{ id, result }` or `{ id, error }`. */
  request(method: string, params: unknown = {}): Promise<any> {
    const id = this.nextId++;
    const p = new Promise<any>((resolve) => this.pending.set(id, resolve));
    this.ws.send(JSON.stringify({ id, method, params }));
    return p;
  }

  /** The result, or throws with the error code. */
  async call(method: string, params: unknown = {}): Promise<any> {
    const res = await this.request(method, params);
    if (res.error) throw Object.assign(new Error(`${method}: ${res.error.code}: ${res.error.message}`), { code: res.error.code });
    return res.result;
  }

  /** Sends a raw frame; resolves the next response carrying `id: null` or the given id. */
  sendRaw(text: string, expectId: number | string | null = null): Promise<any> {
    const p = new Promise<any>((resolve) => this.pending.set(expectId ?? 'null', resolve));
    this.ws.send(text);
    return p;
  }

  /**
   * Resolves with the first notification (already received or future) matching; rejects after
   * `limitMs` so a missing notification fails the test instead of hanging it.
   */
  waitFor(method: string, pred: (params: any) => boolean = () => true, limitMs = 20_000): Promise<Notification> {
    const match = (n: Notification) => n.method === method && pred(n.params);
    const seen = this.notifications.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        pred: match,
        resolve: (n: Notification) => {
          clearTimeout(timer);
          resolve(n);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no ${method} notification`));
      }, limitMs);
      this.waiters.push(waiter);
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = once(this.ws, 'close');
    this.ws.close();
    await closed;
  }
}

/** Polls `fn` until it returns a truthy value (event-driven state we cannot subscribe to), up to `tries` * 100 ms. */
export async function until<T>(what: string, fn: () => T | Promise<T>, tries = 200): Promise<NonNullable<T>> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
