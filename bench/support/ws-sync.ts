// The bench's client for Hearth's WebSocket sync (`/_hearth/client/v1/sync/ws`).
//
// The endpoint and its protocol (protocol-spec/websocket-sync.md) are being built alongside this
// bench. Everything that depends on the wire format is in this file, so aligning the bench with the
// spec means editing only here. Until then it assumes the simplest shape the issue describes:
//   - the access token is never in the URL: it goes in the first frame, and also in an
//     Authorization header of the upgrade request (which browsers cannot send, but Node can);
//   - client → server: {"type": "auth", "access_token": T, "filter": F?, "since": S?}
//   - server → client: sync responses, either bare (`{next_batch, rooms, …}`) or wrapped
//     (`{"type": "sync", "position": P, "sync"|"response"|"data": {…}}`);
//   - client → server: {"type": "ack", "position": P} after each sync frame.
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

export interface SyncFrame {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  response: any;
  position: unknown;
}

/** A sync response inside a server frame, if the frame carries one. */
export function decodeFrame(text: string): SyncFrame | null {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof frame !== 'object' || frame === null) return null;
  const f = frame as Record<string, unknown>;
  const isSync = (v: unknown): boolean => typeof v === 'object' && v !== null && ('rooms' in v || 'next_batch' in v);
  if (isSync(f)) return { response: f, position: f.position ?? f.next_batch };
  for (const key of ['sync', 'response', 'data', 'body']) {
    const inner = f[key] as Record<string, unknown> | undefined;
    if (isSync(inner)) return { response: inner, position: f.position ?? f.pos ?? inner!.next_batch };
  }
  return null;
}

export interface WsSyncConnection {
  socket: WebSocket;
  /** Resolves true on the first sync frame, false if the socket closed or nothing came within the wait. */
  firstSync: Promise<boolean>;
  /** Why the socket closed, if it did. */
  closed: { code: number; reason: string } | null;
  close(): void;
}

export function openWsSync(
  baseUrl: string,
  token: string,
  opts: { filterId?: string; since?: string; firstSyncWaitMs?: number; onSync?: (response: SyncFrame['response'], receivedAt: number) => void },
): WsSyncConnection {
  const socket = new WebSocket(wsUrl(baseUrl), { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
  const conn: WsSyncConnection = {
    socket,
    closed: null,
    firstSync: Promise.resolve(false),
    close: () => {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close(1000, 'bench done');
    },
  };
  conn.firstSync = new Promise<boolean>((resolve) => {
    let settled = false;
    const settle = (v: boolean) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(v);
      }
    };
    const timer = setTimeout(() => settle(false), opts.firstSyncWaitMs ?? 10_000);
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'auth', access_token: token, ...(opts.filterId ? { filter: opts.filterId } : {}), ...(opts.since ? { since: opts.since } : {}) }));
    });
    socket.on('message', (data, isBinary) => {
      const at = performance.now();
      if (isBinary) return;
      const frame = decodeFrame(data.toString());
      if (!frame) return;
      opts.onSync?.(frame.response, at);
      if (frame.position !== undefined) socket.send(JSON.stringify({ type: 'ack', position: frame.position }));
      settle(true);
    });
    socket.on('close', (code, reason) => {
      conn.closed = { code, reason: reason.toString() };
      settle(false);
    });
    socket.on('error', () => settle(false));
  });
  return conn;
}
