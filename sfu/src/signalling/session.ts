// One client WebSocket: requests are handled one at a time in arrival order (so a client never
// races itself, e.g. produce before connectTransport), answered by id; notifications are pushed.
// Nothing a client sends can throw out of here: every failure becomes an error response.
import type { WebSocket } from 'ws';
import type { Logger } from '../logger.js';
import type { Participant } from '../participant.js';
import { SfuError } from './errors.js';
import { HANDLERS, type HandlerDeps, type SessionState } from './handlers.js';
import { checkParams, isMethod, parseRequest, RequestError, type RequestId } from './messages.js';

export interface SessionOptions {
  joinTimeoutMs: number;
  pingIntervalMs: number;
}

/** WebSocket close codes of our own (4000-4999 are for applications). */
export const CLOSE_JOIN_TIMEOUT = 4000;

export class Session implements SessionState {
  participant: Participant | null = null;
  private queue: Promise<void> = Promise.resolve();
  private joinTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout;
  private alive = true;
  private ended = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly deps: HandlerDeps,
    private readonly opts: SessionOptions,
    private readonly logger: Logger,
    private readonly onEnd: (s: Session) => void,
  ) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.send({ id: null, error: { code: 'bad_request', message: 'binary frames are not accepted' } });
        return;
      }
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      this.queue = this.queue.then(() => this.handle(text));
    });
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('close', () => this.end());
    ws.on('error', (err) => {
      this.logger.debug({ err: err.message }, 'socket error');
      this.end();
    });
    this.pingTimer = setInterval(() => {
      if (!this.alive) {
        ws.terminate();
        return;
      }
      this.alive = false;
      ws.ping();
    }, opts.pingIntervalMs);
    this.armJoinTimer();
  }

  readonly notify = (method: string, params: Record<string, unknown>): void => {
    this.send({ method, params });
  };

  onEvicted(reason: string): void {
    this.participant = null;
    this.notify('callClosed', { reason });
    this.armJoinTimer();
  }

  private armJoinTimer(): void {
    if (this.ended) return;
    if (this.joinTimer) clearTimeout(this.joinTimer);
    this.joinTimer = setTimeout(() => {
      if (!this.participant) this.ws.close(CLOSE_JOIN_TIMEOUT, 'join timeout');
    }, this.opts.joinTimeoutMs);
  }

  private async handle(text: string): Promise<void> {
    if (this.ended) return;
    let id: RequestId | null = null;
    try {
      const req = parseRequest(text);
      id = req.id;
      if (!isMethod(req.method)) throw new SfuError('unknown_method', `unknown method ${req.method}`);
      const params = checkParams(req.method, req.params);
      const handler = HANDLERS[req.method] as (d: HandlerDeps, s: SessionState, p: unknown) => Promise<Record<string, unknown>>;
      const result = await handler(this.deps, this, params);
      if (this.ended) {
        // The socket died while this request ran (a join, say): release what it created.
        const p = this.participant;
        this.participant = null;
        if (p) p.call.leave(p);
        return;
      }
      if (this.participant && this.joinTimer) {
        clearTimeout(this.joinTimer);
        this.joinTimer = null;
      }
      this.send({ id, result });
    } catch (err) {
      if (err instanceof RequestError) id = err.id;
      this.send({ id, error: this.toWire(err instanceof RequestError ? err.cause : err) });
    }
  }

  /** SfuError as is; mediasoup's TypeError (bad RTP/DTLS parameters) is the client's fault; the rest is logged. */
  private toWire(err: unknown): { code: string; message: string } {
    if (err instanceof SfuError) return { code: err.code, message: err.message };
    if (err instanceof TypeError) return { code: 'bad_request', message: err.message };
    const name = (err as Error)?.name;
    if (name === 'UnsupportedError') return { code: 'bad_request', message: (err as Error).message };
    if (name === 'InvalidStateError') return { code: 'not_found', message: (err as Error).message };
    this.logger.error({ err: (err as Error)?.stack ?? String(err) }, 'request failed');
    return { code: 'internal', message: 'internal error' };
  }

  private send(msg: unknown): void {
    if (this.ended || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(JSON.stringify(msg));
  }

  /** The socket is gone: leave the call and release everything. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.pingTimer);
    if (this.joinTimer) clearTimeout(this.joinTimer);
    const p = this.participant;
    this.participant = null;
    if (p) p.call.leave(p);
    this.onEnd(this);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
    this.end();
  }
}
