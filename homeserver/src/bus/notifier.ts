import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../core/logger.js';
import type { ExtraStream } from '../services/sync/token.js';

/** Something new was committed: which rooms and users it concerns, and its stream position. */
export interface StreamChange {
  /** Events stream position (0 for changes that are not room events). */
  position: number;
  /** Positions in the other streams this change reached (e.g. `{ receipts: 12 }`). */
  streams?: Partial<Record<ExtraStream, number>>;
  roomIds: string[];
  userIds: string[];
  /** Only events of other servers (federation ingestion): the federation sender has nothing to send for it. */
  remoteOnly?: boolean;
}

export interface Interest {
  userId: string;
  roomIds: ReadonlySet<string>;
}

type Listener = (change: StreamChange) => void;

/** How many recent changes the notifier remembers for changedSince. */
const RECENT_CHANGES = 1024;

/**
 * Wakes waiting syncs and WebSocket sessions when data they care about commits. In one process it
 * is an in-memory index of waiters by room and user; with Redis every change is also published so
 * the other homeserver processes wake their own waiters. Nobody polls.
 */
export class Notifier {
  private readonly byRoom = new Map<string, Set<Listener>>();
  private readonly byUser = new Map<string, Set<Listener>>();
  private readonly all = new Set<Listener>();
  private readonly origin = randomUUID();
  private sub: Redis | null = null;
  private pub: Redis | null = null;

  constructor(private readonly logger?: Logger) {}

  /** Connects the cross-process channel (a separate Redis connection is needed for SUBSCRIBE). */
  async attachRedis(pub: Redis, sub: Redis, channel = 'hearth:stream'): Promise<void> {
    this.pub = pub;
    this.sub = sub;
    this.channel = channel;
    sub.on('message', (_ch: string, message: string) => {
      try {
        const { origin, change } = JSON.parse(message) as { origin: string; change: StreamChange };
        if (origin !== this.origin) this.dispatch(change);
      } catch (err) {
        this.logger?.warn({ err }, 'bad notifier message');
      }
    });
    await sub.subscribe(channel);
  }

  private channel = 'hearth:stream';

  /** Announces a committed change: local waiters now, other processes through Redis. */
  notify(change: StreamChange): void {
    this.dispatch(change);
    if (this.pub) {
      this.pub.publish(this.channel, JSON.stringify({ origin: this.origin, change })).catch((err: unknown) => {
        this.logger?.error({ err }, 'publishing a stream change failed');
      });
    }
  }

  /** Counts dispatched changes; `recent` keeps the last RECENT_CHANGES of them for changedSince. */
  private seq = 0;
  private readonly recent: { seq: number; change: StreamChange }[] = [];

  /** A mark to pass to changedSince later. */
  get sequence(): number {
    return this.seq;
  }

  /**
   * Whether a change touching the interest was dispatched after the mark (true as well when too
   * many changes came since to tell). Lets a caller compute first and listen afterwards.
   */
  changedSince(mark: number, interest: Interest): boolean {
    if (mark === this.seq) return false;
    if (this.recent.length === 0 || this.recent[0]!.seq > mark + 1) return true;
    for (const r of this.recent) {
      if (r.seq <= mark) continue;
      if (r.change.userIds.includes(interest.userId) || r.change.roomIds.some((id) => interest.roomIds.has(id))) return true;
    }
    return false;
  }

  private dispatch(change: StreamChange): void {
    this.recent.push({ seq: ++this.seq, change });
    if (this.recent.length > RECENT_CHANGES) this.recent.shift();
    const hit = new Set<Listener>(this.all);
    for (const r of change.roomIds) for (const l of this.byRoom.get(r) ?? []) hit.add(l);
    for (const u of change.userIds) for (const l of this.byUser.get(u) ?? []) hit.add(l);
    for (const l of hit) l(change);
  }

  /** Calls `listener` for every change touching the interest; returns the unsubscribe function. */
  listen(interest: Interest | 'all', listener: Listener): () => void {
    if (interest === 'all') {
      this.all.add(listener);
      return () => this.all.delete(listener);
    }
    const add = (m: Map<string, Set<Listener>>, k: string) => {
      let s = m.get(k);
      if (!s) m.set(k, (s = new Set()));
      s.add(listener);
    };
    const remove = (m: Map<string, Set<Listener>>, k: string) => {
      const s = m.get(k);
      s?.delete(listener);
      if (s && s.size === 0) m.delete(k);
    };
    add(this.byUser, interest.userId);
    for (const r of interest.roomIds) add(this.byRoom, r);
    return () => {
      remove(this.byUser, interest.userId);
      for (const r of interest.roomIds) remove(this.byRoom, r);
    };
  }

  /**
   * Resolves on the first relevant change, after `timeoutMs`, or when `signal` aborts.
   * Callers check for data committed before they started waiting themselves.
   */
  wait(interest: Interest, timeoutMs: number, signal?: AbortSignal): Promise<'changed' | 'timeout'> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (why: 'changed' | 'timeout') => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unlisten();
        signal?.removeEventListener('abort', onAbort);
        resolve(why);
      };
      const onAbort = () => finish('timeout');
      const unlisten = this.listen(interest, () => finish('changed'));
      const timer = setTimeout(() => finish('timeout'), timeoutMs);
      signal?.addEventListener('abort', onAbort);
    });
  }

  /** How many waiters are registered (for tests and metrics). */
  get listenerCount(): number {
    let n = this.all.size;
    for (const s of this.byUser.values()) n += s.size;
    return n;
  }

  async close(): Promise<void> {
    if (this.sub) await this.sub.unsubscribe().catch(() => {});
  }
}
