// The bench's client for Hearth's WebSocket sync (`/_hearth/client/v1/sync/ws`). Everything that
// depends on the wire format is in this file. It follows protocol-spec/websocket-sync.md as the
// server implements it (homeserver/src/api/ws/sync_session.ts):
//   - the access token is never in the URL (nor in a header): it goes in the first frame,
//     client → server  {"type": "auth", "access_token": T, "filter": F?, "since": S?}
//     server → client  {"type": "ready", …}
//   - server → client  {"type": "sync", "pos": P, "data": <a /sync response>} whenever there is news
//     (after a `since`, nothing is sent until something happens);
//   - client → server  {"type": "ack", "pos": P} for each sync frame (the server holds back after
//     a few unacknowledged ones);
//   - server → client  {"type": "error", "errcode", "error"} before it closes with a 4xxx code.
// If the server speaks something else, the bench reports WebSocket latency as unavailable, with
// the reason, and still reports memory for sockets that stay open.
import WebSocket from 'ws';

export const WS_SYNC_PATH = '/_hearth/client/v1/sync/ws';

export type Probe = { available: true } | { available: false; reason: string };

function wsUrl(baseUrl: string): string {
  return baseUrl.replace(/^http/, 'ws') + WS_SYNC_PATH;
}

/** Whether the server upgrades the endpoint at all (an unauthenticated attempt, closed at once). */
export function probeWsSync(baseUrl: string, timeoutMs = 5000): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = new WebSocket(wsUrl(baseUrl));
    const done = (p: Probe) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.terminate();
      resolve(p);
    };
    const timer = setTimeout(() => done({ available: false, reason: `no answer to the upgrade within ${timeoutMs} ms` }), timeoutMs);
    socket.on('unexpected-response', (_req, res) => done({ available: false, reason: `endpoint not present (HTTP ${res.statusCode} to the upgrade)` }));
    socket.on('open', () => done({ available: true }));
    socket.on('error', (err) => done({ available: false, reason: err.message }));
  });
}

export interface WsSyncConnection {
  socket: WebSocket;
  /** Resolves true once the server answered the auth frame with `ready`; false if it closed or did not within the wait. */
  ready: Promise<boolean>;
  /** Sync frames received. */
  frames: number;
  /** The server's last error frame, if any. */
  error: { errcode?: string; error?: string } | null;
  /** Why the socket closed, if it did. */
  closed: { code: number; reason: string } | null;
  close(): void;
}

export function openWsSync(
  baseUrl: string,
  token: string,
  opts: {
    filterId?: string;
    since?: string;
    readyWaitMs?: number;
    // A /sync response, read loosely.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    onSync?: (response: any, receivedAt: number) => void;
  },
): WsSyncConnection {
  const socket = new WebSocket(wsUrl(baseUrl), { perMessageDeflate: false });
  const conn: WsSyncConnection = {
    socket,
    frames: 0,
    error: null,
    closed: null,
    ready: Promise.resolve(false),
    close: () => {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close(1000, 'bench done');
    },
  };
  conn.ready = new Promise<boolean>((resolve) => {
    let settled = false;
    const settle = (v: boolean) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(v);
      }
    };
    const timer = setTimeout(() => settle(false), opts.readyWaitMs ?? 15_000);
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'auth', access_token: token, ...(opts.filterId ? { filter: opts.filterId } : {}), ...(opts.since ? { since: opts.since } : {}) }));
    });
    socket.on('message', (data, isBinary) => {
      const at = performance.now();
      if (isBinary) return;
      let frame: { type?: unknown; pos?: unknown; data?: unknown; errcode?: string; error?: string };
      try {
        frame = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (frame.type === 'ready') settle(true);
      else if (frame.type === 'error') conn.error = { errcode: frame.errcode, error: frame.error };
      else if (frame.type === 'sync') {
        conn.frames++;
        opts.onSync?.(frame.data, at);
        if (typeof frame.pos === 'string') socket.send(JSON.stringify({ type: 'ack', pos: frame.pos }));
        settle(true);
      }
    });
    socket.on('close', (code, reason) => {
      conn.closed = { code, reason: reason.toString() };
      settle(false);
    });
    socket.on('error', () => settle(false));
  });
  return conn;
}
