import { WebSocket, type RawData } from 'ws';
import type { AppDeps } from '../../app.js';
import { MatrixError, badJson, missingToken } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import type { Requester } from '../../services/auth/sessions.js';
import type { StreamChange } from '../../bus/notifier.js';
import { parseFilter, type Filter } from '../../services/sync/filter.js';
import { formatToken, parseToken, tokenAtOrBefore, type ExtraStream, type StreamToken } from '../../services/sync/token.js';
import { syncFilterParam } from '../client/filter.js';

/** Close codes of the WebSocket sync (protocol-spec/websocket-sync.md). */
export const CLOSE = {
  goingAway: 1001,
  internal: 1011,
  protocol: 4000,
  /** No auth frame in time, or another frame came first. */
  unauthenticated: 4001,
  /** The token was refused, or the session ended (logout). */
  unauthorized: 4003,
  /** Another connection of the same device took over. */
  replaced: 4009,
} as const;

export interface SocketHooks {
  authenticated(s: SyncSocket): void;
  closed(s: SyncSocket): void;
}

type Phase = 'auth' | 'authenticating' | 'open' | 'closed';

/** How often a socket held back by its send buffer looks again (its own send callbacks also wake it). */
const DRAIN_RECHECK_MS = 100;

/**
 * One WebSocket sync connection. After the auth frame, batches are computed from the position last
 * sent (`from`), so what the client has not acknowledged is never held in memory: while the client
 * is behind (too many unacknowledged batches, or a full send buffer) new commits only set `dirty`,
 * and the next batch, computed once it may be sent, covers them all.
 */
export class SyncSocket {
  requester?: Requester;
  private phase: Phase = 'auth';
  private token = '';
  private filter: Filter = parseFilter({});
  private fullState = false;
  /** Where the next batch starts; undefined until the first (initial) batch. */
  private from?: Required<StreamToken>;
  /** Position of the last batch sent. */
  private lastSent?: Required<StreamToken>;
  /** The newest position the client acknowledged (or resumed from); nothing before it is resent. */
  private acked?: StreamToken;
  private readonly inflight: Required<StreamToken>[] = [];
  private dirty = false;
  private busy = false;
  private first = true;
  private rooms = new Set<string>();
  private unlisten: () => void = () => {};
  private alive = true;
  private readonly authTimer: NodeJS.Timeout;
  private readonly pingTimer: NodeJS.Timeout;
  private drainTimer?: NodeJS.Timeout;
  /** Settles when the underlying connection has closed. */
  readonly done: Promise<void>;

  constructor(
    private readonly ws: WebSocket,
    private readonly deps: AppDeps,
    private readonly hooks: SocketHooks,
    private readonly ip: string,
  ) {
    const cfg = deps.config.ws;
    this.authTimer = setTimeout(() => this.fail(CLOSE.unauthenticated, 'M_MISSING_TOKEN', 'No auth frame received in time'), cfg.authTimeoutMs);
    this.pingTimer = setInterval(() => this.heartbeat(), cfg.pingIntervalMs);
    ws.on('pong', () => (this.alive = true));
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    this.done = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('close', () => this.cleanup());
    ws.on('error', (err) => deps.logger.debug({ err }, 'sync socket error'));
  }

  get deviceKey(): string | undefined {
    return this.requester && `${this.requester.userId}\u0000${this.requester.deviceId}`;
  }

  /** Closes with `code`; an error frame first says why. */
  fail(code: number, errcode: string, error: string, extra: Record<string, unknown> = {}): void {
    if (this.phase === 'closed') return;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'error', errcode, error, ...extra }));
    this.close(code, error);
  }

  close(code: number, reason: string): void {
    if (this.phase === 'closed') return;
    this.cleanup();
    // A close reason may hold at most 123 bytes.
    this.ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
  }

  terminate(): void {
    this.cleanup();
    this.ws.terminate();
  }

  private cleanup(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearTimeout(this.authTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.drainTimer);
    this.unlisten();
    this.hooks.closed(this);
  }

  /** Drops a socket that did not answer the previous ping; re-checks the session now and then. */
  private heartbeat(): void {
    if (!this.alive) {
      this.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
    if (this.phase === 'open' && !this.busy) void this.revalidate();
    // A connected socket keeps its user counting as syncing (presence stays online).
    if (this.phase === 'open') void this.deps.services.presence.socketAlive(this.requester!.userId);
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.phase === 'closed') return;
    if (isBinary) return this.fail(CLOSE.protocol, 'M_NOT_JSON', 'Frames are JSON text');
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return this.fail(CLOSE.protocol, 'M_NOT_JSON', 'Frame is not valid JSON');
    }
    if (!isObject(msg) || typeof msg.type !== 'string') return this.fail(CLOSE.protocol, 'M_BAD_JSON', 'A frame is a JSON object with a string type');
    if (this.phase === 'auth') {
      if (msg.type !== 'auth') return this.fail(CLOSE.unauthenticated, 'M_MISSING_TOKEN', 'The first frame must be an auth frame');
      void this.authenticate(msg);
      return;
    }
    if (this.phase === 'authenticating') return this.fail(CLOSE.protocol, 'M_BAD_JSON', 'Wait for the ready frame');
    if (msg.type === 'ack') return this.onAck(msg.pos);
    if (msg.type === 'token') {
      void this.swapToken(msg.access_token);
      return;
    }
    if (msg.type === 'auth') return this.fail(CLOSE.protocol, 'M_BAD_JSON', 'Already authenticated');
    // Other frame types are ignored: later versions may add some.
  }

  private async authenticate(msg: JsonObject): Promise<void> {
    this.phase = 'authenticating';
    clearTimeout(this.authTimer);
    try {
      if (typeof msg.access_token !== 'string' || msg.access_token === '') throw missingToken();
      const requester = await this.deps.services.sessions.authenticate(msg.access_token);
      if (msg.since !== undefined && msg.since !== null) {
        if (typeof msg.since !== 'string') throw badJson("'since' must be a string");
        this.from = parseToken(msg.since, 'since token');
        this.acked = this.from;
      }
      if (msg.full_state !== undefined && typeof msg.full_state !== 'boolean') throw badJson("'full_state' must be a boolean");
      this.fullState = msg.full_state === true;
      if (isObject(msg.filter)) this.filter = parseFilter(msg.filter);
      else if (typeof msg.filter === 'string') this.filter = await syncFilterParam(this.deps, requester.userId, msg.filter);
      else if (msg.filter !== undefined && msg.filter !== null) throw badJson("'filter' must be a filter id or a filter object");
      const rooms = await this.deps.services.rooms.reader.joinedRooms(requester.userId);
      if (this.phase !== 'authenticating') return; // closed meanwhile
      this.requester = requester;
      this.token = msg.access_token;
      this.phase = 'open';
      this.hooks.authenticated(this);
      void this.deps.services.sessions.recordActivity(requester, this.ip);
      this.listen(rooms);
      this.send({
        type: 'ready',
        user_id: requester.userId,
        device_id: requester.deviceId,
        since: this.from === undefined ? null : formatToken(this.from),
        max_unacked: this.deps.config.ws.maxUnacked,
        ping_interval_ms: this.deps.config.ws.pingIntervalMs,
      });
      this.dirty = true;
      this.pump();
    } catch (err) {
      this.failWith(err);
    }
  }

  /** `{"type":"token"}`: a refreshed access token of the same device replaces the current one. */
  private async swapToken(token: unknown): Promise<void> {
    try {
      if (typeof token !== 'string' || token === '') throw missingToken();
      const r = await this.deps.services.sessions.authenticate(token);
      if (r.userId !== this.requester?.userId || r.deviceId !== this.requester.deviceId) {
        throw new MatrixError(403, 'M_FORBIDDEN', 'The new token belongs to another device');
      }
      this.token = token;
    } catch (err) {
      this.failWith(err);
    }
  }

  private failWith(err: unknown): void {
    if (this.phase === 'closed') return;
    if (err instanceof MatrixError) {
      const auth = err.status === 401 || err.status === 403;
      this.fail(auth ? CLOSE.unauthorized : CLOSE.protocol, err.errcode, err.message, err.extra);
    } else {
      this.deps.logger.error({ err }, 'sync socket failed');
      this.fail(CLOSE.internal, 'M_UNKNOWN', 'Internal server error');
    }
  }

  private onAck(raw: unknown): void {
    let pos: StreamToken;
    try {
      if (typeof raw !== 'string') throw badJson("'pos' must be a string");
      pos = parseToken(raw, 'pos');
    } catch (err) {
      return this.failWith(err);
    }
    if (this.lastSent === undefined || !tokenAtOrBefore(pos, this.lastSent)) return this.fail(CLOSE.protocol, 'M_INVALID_PARAM', 'Acknowledged a position that was not sent');
    while (this.inflight.length > 0 && tokenAtOrBefore(this.inflight[0]!, pos)) this.inflight.shift();
    this.acked = pos;
    this.pump();
  }

  private listen(rooms: string[]): void {
    this.unlisten();
    this.rooms = new Set(rooms);
    this.unlisten = this.deps.bus.notifier.listen({ userId: this.requester!.userId, roomIds: this.rooms }, (c) => this.onChange(c));
  }

  private onChange(change: StreamChange): void {
    // Already covered by the last batch (position 0 carries no data: only "re-check the session").
    if (this.from !== undefined && changeCovered(change, this.from)) return;
    this.dirty = true;
    this.pump();
  }

  /** Computes and sends the next batch if there is news and the client may take it. */
  private pump(): void {
    if (this.busy || this.phase !== 'open' || !this.dirty) return;
    const cfg = this.deps.config.ws;
    if (this.inflight.length >= cfg.maxUnacked) return; // an ack resumes
    if (this.ws.bufferedAmount > cfg.maxBufferedBytes) {
      this.drainTimer ??= setTimeout(() => {
        this.drainTimer = undefined;
        this.pump();
      }, DRAIN_RECHECK_MS);
      return;
    }
    this.busy = true;
    this.dirty = false;
    void this.step().finally(() => {
      this.busy = false;
      this.pump();
    });
  }

  private async step(): Promise<void> {
    try {
      if (!(await this.revalidate())) return;
      const r = this.requester!;
      const initial = this.from === undefined;
      const result = await this.deps.services.rooms.sync.compute(
        {
          userId: r.userId,
          deviceId: r.deviceId,
          since: initial ? undefined : this.from,
          // Batches sent but not yet acknowledged may be lost with the connection: only what the
          // client acknowledged counts as delivered (to-device messages are deleted up to it).
          acknowledged: this.acked ?? { events: 0 },
          timeoutMs: 0,
          fullState: this.first && this.fullState,
          filter: this.filter,
        },
        { windowed: true },
      );
      if (this.phase !== 'open') return;
      this.first = false;
      if (!result.complete) this.dirty = true;
      else if (!sameRooms(this.rooms, result.joinedRooms)) {
        // Joined or left rooms: listen to the new set, then look once more for what committed meanwhile.
        this.listen(result.joinedRooms);
        this.dirty = true;
      }
      if (!result.empty || initial) {
        this.send({ type: 'sync', pos: formatToken(result.token), data: result.response });
        this.inflight.push(result.token);
        this.lastSent = result.token;
      }
      this.from = result.token;
    } catch (err) {
      this.failWith(err);
    }
  }

  /** The session may have ended (logout, deactivation) since the last check. */
  private async revalidate(): Promise<boolean> {
    try {
      await this.deps.services.sessions.authenticate(this.token);
      return this.phase === 'open';
    } catch (err) {
      this.failWith(err);
      return false;
    }
  }

  private send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame), (err) => {
      if (err) this.deps.logger.debug({ err }, 'sync socket send failed');
      else this.pump(); // the send buffer drained a little
    });
  }
}

/** Whether a change is already covered by a batch that reached `from`. */
function changeCovered(change: StreamChange, from: Required<StreamToken>): boolean {
  const streams = Object.entries(change.streams ?? {}) as [ExtraStream, number][];
  // Position 0 and no stream: no data, only "re-check the session".
  if (streams.length === 0) return change.position > 0 && change.position <= from.events;
  return streams.every(([name, pos]) => pos <= from[name]) && change.position <= from.events;
}

function sameRooms(a: Set<string>, b: string[]): boolean {
  return a.size === b.length && b.every((r) => a.has(r));
}
