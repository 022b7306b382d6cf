import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AppDeps } from '../../app.js';
import { CLOSE, SyncSocket } from './sync_session.js';

/** The WebSocket sync endpoint (protocol-spec/websocket-sync.md). */
export const SYNC_WS_PATH = '/_hearth/client/v1/sync/ws';

/** How long shutdown waits for sockets to answer the close frame before cutting them. */
const CLOSE_GRACE_MS = 1000;

/**
 * WebSocket sync, Hearth's extension: upgrades on the HTTP server's 'upgrade' event, one socket per
 * device (a newer connection of the same device replaces the older one, in this process).
 */
export class RealtimeServer {
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<SyncSocket>();
  private readonly byDevice = new Map<string, SyncSocket>();
  private closing = false;

  constructor(private readonly deps: AppDeps) {
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: deps.config.ws.maxClientFrameBytes,
    });
  }

  attach(server: http.Server): void {
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  /** Open sockets (authenticated or not). */
  get size(): number {
    return this.sockets.size;
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.deps.logger.debug({ err }, 'upgrade socket error'));
    if (this.closing) return refuse(socket, 503, 'M_UNKNOWN', 'The server is shutting down');
    const path = (req.url ?? '/').split('?')[0];
    const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
    if (path !== SYNC_WS_PATH) return refuse(socket, 404, 'M_UNRECOGNIZED', 'Unrecognized request');
    // Tokens in URLs end up in proxy and access logs: this endpoint takes it in the first frame only.
    if (query.has('access_token')) return refuse(socket, 400, 'M_INVALID_PARAM', 'Send the access token in the auth frame, not in the URL');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, clientIp(req, this.deps.config.trustProxy)));
  }

  private open(ws: WebSocket, ip: string): void {
    if (this.closing) {
      ws.close(CLOSE.goingAway, 'The server is shutting down');
      return;
    }
    const s = new SyncSocket(ws, this.deps, {
      authenticated: (sock) => {
        const key = sock.deviceKey!;
        const older = this.byDevice.get(key);
        this.byDevice.set(key, sock);
        if (older && older !== sock) older.close(CLOSE.replaced, 'Replaced by a newer connection of this device');
      },
      closed: (sock) => {
        this.sockets.delete(sock);
        const key = sock.deviceKey;
        if (key && this.byDevice.get(key) === sock) this.byDevice.delete(key);
      },
    }, ip);
    this.sockets.add(s);
  }

  /** Closes every socket (1001), cutting those that do not answer within a second. */
  async close(): Promise<void> {
    this.closing = true;
    const all = [...this.sockets];
    for (const s of all) s.close(CLOSE.goingAway, 'The server is shutting down');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((r) => (timer = setTimeout(r, CLOSE_GRACE_MS)));
    await Promise.race([Promise.all(all.map((s) => s.done)), grace]);
    clearTimeout(timer);
    for (const s of all) s.terminate();
    this.wss.close();
  }
}

function refuse(socket: Duplex, status: number, errcode: string, error: string): void {
  const body = JSON.stringify({ errcode, error });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function clientIp(req: http.IncomingMessage, trustProxy: boolean): string {
  const forwarded = req.headers['x-forwarded-for'];
  if (trustProxy && typeof forwarded === 'string' && forwarded.trim() !== '') return forwarded.split(',')[0]!.trim();
  return req.socket.remoteAddress ?? '';
}
