import WebSocket from 'ws';
import type { TestServer } from './harness.js';
import type { User } from './rooms.js';

/**
 * A `ws` client of the WebSocket sync (protocol-spec/websocket-sync.md) for tests: it queues the
 * frames it receives, and a wait for a frame that never comes fails the test instead of hanging it.
 *
 *   const sock = await openSyncSocket(s, bob, { since, autoAck: true });
 *   const f = await sock.nextSync((f) => …);   // the next sync frame that satisfies the predicate
 *   await sock.close();
 */

export const SYNC_WS_PATH = '/_hearth/client/v1/sync/ws';
/** How long a wait for a frame lasts, by default. */
export const WS_WAIT_MS = 20_000;

export interface SyncSocket {
  readonly ws: WebSocket;
  /** Settles when the socket has closed, with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Sends one JSON frame. */
  send(frame: unknown): void;
  /** The next frame; throws if none comes within `ms`, or the socket closes first. */
  next(ms?: number): Promise<any>;
  /** The next frame, or undefined if none comes within `ms` (or the socket closed). */
  poll(ms: number): Promise<any>;
  /**
   * The next `sync` frame that satisfies `pred`, skipping other sync frames; throws on an `error`
   * frame, or if none comes within `ms` in all.
   */
  nextSync(pred?: (frame: any) => boolean, ms?: number): Promise<any>;
  /** Closes the socket (normal closure) and waits for the close handshake. */
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Resume from this position (sent in the auth frame). */
  since?: string;
  /** Any other fields of the auth frame (e.g. `filter`). */
  auth?: Record<string, unknown>;
  /** Acknowledge every sync frame as it arrives (for tests that only read). */
  autoAck?: boolean;
  /** `ws` client options (e.g. `autoPong: false`). */
  ws?: WebSocket.ClientOptions;
}

/** Connects to the server's WebSocket sync (on a real port) without authenticating. */
export async function connectSyncSocket(server: TestServer, opts: Pick<OpenOptions, 'autoAck' | 'ws'> = {}): Promise<SyncSocket> {
  const base = await server.listen();
  const ws = new WebSocket(base.replace(/^http/, 'ws') + SYNC_WS_PATH, opts.ws);
  const frames: any[] = [];
  let wake: (() => void) | null = null;
  ws.on('error', () => {}); // reported through 'close'
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString());
    if (opts.autoAck && frame.type === 'sync') ws.send(JSON.stringify({ type: 'ack', pos: frame.pos }));
    frames.push(frame);
    wake?.();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  void closed.then(() => wake?.());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', () => reject(new Error('the WebSocket sync closed before it opened')));
  });

  const poll = async (ms: number): Promise<any> => {
    const deadline = Date.now() + ms;
    while (frames.length === 0) {
      if (ws.readyState === WebSocket.CLOSED || Date.now() >= deadline) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
    return frames.shift();
  };
  const next = async (ms = WS_WAIT_MS): Promise<any> => {
    const frame = await poll(ms);
    if (frame !== undefined) return frame;
    if (ws.readyState === WebSocket.CLOSED) throw new Error(`the WebSocket sync closed (${(await closed).code}) while a frame was awaited`);
    throw new Error(`no WebSocket sync frame within ${ms} ms`);
  };
  const nextSync = async (pred: (frame: any) => boolean = () => true, ms = WS_WAIT_MS): Promise<any> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const frame = await next(Math.max(0, deadline - Date.now()));
      if (frame.type === 'error') throw new Error(`WebSocket sync error frame: ${JSON.stringify(frame)}`);
      if (frame.type === 'sync' && pred(frame)) return frame;
    }
  };
  return {
    ws,
    closed,
    send: (frame) => ws.send(JSON.stringify(frame)),
    next,
    poll,
    nextSync,
    async close() {
      if (ws.readyState !== WebSocket.CLOSED) ws.close();
      await closed;
    },
  };
}

/**
 * Opens a WebSocket sync as `user` (its access token in the auth frame) and waits for `ready`;
 * `next()` then yields the frames after it.
 */
export async function openSyncSocket(server: TestServer, user: Pick<User, 'access_token'>, opts: OpenOptions = {}): Promise<SyncSocket> {
  const sock = await connectSyncSocket(server, opts);
  sock.send({ type: 'auth', access_token: user.access_token, ...(opts.since !== undefined ? { since: opts.since } : {}), ...opts.auth });
  const ready = await sock.next();
  if (ready.type !== 'ready') {
    sock.ws.terminate();
    throw new Error(`expected a ready frame, got ${JSON.stringify(ready)}`);
  }
  return sock;
}
