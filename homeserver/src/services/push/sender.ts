import { randomUUID } from 'node:crypto';
import type { PushConfig } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import type { Database } from '../../storage/db.js';
import type { Notifier } from '../../bus/notifier.js';
import * as events from '../../storage/events.js';
import * as actionsStore from '../../storage/push_actions.js';
import * as store from '../../storage/pushers.js';
import { tweaksOf } from './conditions.js';
import { postNotification, type GatewayOptions, type GatewayResult } from './gateway.js';
import type { NotificationService } from './notifications.js';
import type { PushAction } from '../push_rules.js';

type Json = Record<string, unknown>;

/** Notifications read per batch of one pusher's backlog. */
const BATCH = 20;
/** How often old push actions are pruned (any process may do it; deletes are idempotent). */
const PRUNE_INTERVAL_MS = 3600_000;

/**
 * Sends each pusher's notifications to its push gateway (push gateway API), in stream order.
 *
 * Durable: a pusher's `last_stream_ordering` moves only after the gateway accepted (or for good
 * refused) a notification, so a restart resumes where the last success left off and never resends
 * an accepted one. Woken by the notifier when events commit (in any process, via Redis); a sweep
 * every lease period picks up pushers whose owner died. One process at a time sends a pusher's
 * notifications: it holds the pusher's lease (renewed while it works, released when idle).
 */
export class PushSender {
  private readonly owner = randomUUID();
  private readonly workers = new Map<number, PusherWorker>();
  private unlisten: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private scanning = false;
  private pending: { all: boolean; rooms: Set<string> } | null = null;
  private lastPrune = 0;

  constructor(
    readonly deps: {
      db: Database;
      notifier: Notifier;
      logger: Logger;
      config: PushConfig;
      notifications: NotificationService;
      /** The HTTP call (tests of failure paths may wrap it; defaults to the real client). */
      post?: (url: string, body: unknown, opts: GatewayOptions) => Promise<GatewayResult>;
    },
  ) {}

  start(): void {
    if (this.unlisten || this.closed) return;
    this.unlisten = this.deps.notifier.listen('all', (change) => {
      if (change.position > 0) this.wake(change.roomIds);
    });
    this.sweepTimer = setInterval(() => this.wake(), this.deps.config.leaseMs);
    this.sweepTimer.unref();
    this.wake();
  }

  /** Looks for pushers with a backlog (in these rooms, or anywhere) and starts their workers. */
  wake(roomIds?: readonly string[]): void {
    if (this.closed) return;
    const all = !roomIds || roomIds.length === 0;
    if (!this.pending) this.pending = { all, rooms: new Set() };
    if (all) this.pending.all = true;
    else for (const r of roomIds) this.pending.rooms.add(r);
    if (this.scanning) return;
    this.scanning = true;
    void this.scanLoop();
  }

  private async scanLoop(): Promise<void> {
    try {
      while (this.pending && !this.closed) {
        const p = this.pending;
        this.pending = null;
        try {
          await this.scan(p.all ? undefined : [...p.rooms]);
          if (p.all) await this.prune();
        } catch (err) {
          this.deps.logger.error({ err }, 'push sender: scan failed');
        }
      }
    } finally {
      this.scanning = false;
    }
  }

  private async scan(roomIds: string[] | undefined): Promise<void> {
    const ids = await store.withBacklog(this.deps.db, roomIds);
    for (const id of ids) {
      if (this.closed) return;
      const running = this.workers.get(id);
      if (running) {
        running.poke();
        continue;
      }
      const token = randomUUID();
      if (!(await store.claim(this.deps.db, id, this.owner, token, this.deps.config.leaseMs))) continue;
      if (this.closed || this.workers.has(id)) {
        await store.release(this.deps.db, id, token);
        this.workers.get(id)?.poke();
        continue;
      }
      this.workers.set(id, new PusherWorker(this, id, token));
    }
  }

  private async prune(): Promise<void> {
    if (Date.now() - this.lastPrune < PRUNE_INTERVAL_MS) return;
    this.lastPrune = Date.now();
    await actionsStore.deleteOlderThan(this.deps.db, Date.now() - this.deps.config.actionsRetentionMs);
  }

  /** Called by a worker that ended. */
  workerEnded(w: PusherWorker, poked: boolean): void {
    if (this.workers.get(w.id) === w) this.workers.delete(w.id);
    // A wake-up that reached the worker after its last look: look again.
    if (poked) this.wake();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stops sending: in-flight requests and back-off waits are abandoned, leases released. */
  async close(): Promise<void> {
    this.closed = true;
    this.unlisten?.();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    const running = [...this.workers.values()];
    for (const w of running) w.stop();
    await Promise.all(running.map((w) => w.done));
  }

  post(url: string, body: unknown, signal: AbortSignal): Promise<GatewayResult> {
    const opts = { timeoutMs: this.deps.config.requestTimeoutMs, allowPrivateAddresses: this.deps.config.allowPrivateAddresses, signal };
    return (this.deps.post ?? postNotification)(url, body, opts);
  }
}

/** Sends one pusher's backlog while holding its lease. */
class PusherWorker {
  readonly done: Promise<void>;
  private poked = false;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly sender: PushSender,
    readonly id: number,
    private readonly token: string,
  ) {
    this.done = this.run();
  }

  poke(): void {
    this.poked = true;
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private get deps() {
    return this.sender.deps;
  }

  private async run(): Promise<void> {
    const { db, config, logger } = this.deps;
    const renewal = setInterval(() => {
      store.renew(db, this.id, this.token, config.leaseMs).then(
        (held) => {
          if (!held) this.stop();
        },
        (err: unknown) => logger.warn({ err, pusher: this.id }, 'push sender: lease renewal failed'),
      );
    }, Math.max(1, Math.floor(config.leaseMs / 3)));
    renewal.unref();
    try {
      await this.loop();
    } catch (err) {
      logger.error({ err, pusher: this.id }, 'push sender: pusher worker failed');
    } finally {
      clearInterval(renewal);
      this.sender.workerEnded(this, this.poked && !this.stopped);
      await store.release(db, this.id, this.token).catch((err: unknown) => logger.warn({ err, pusher: this.id }, 'push sender: lease release failed'));
    }
  }

  private async loop(): Promise<void> {
    const { db } = this.deps;
    for (;;) {
      if (this.stopped) return;
      this.poked = false;
      const pusher = await store.get(db, this.id);
      if (!pusher) return;
      const batch = await actionsStore.notifyingAfter(db, pusher.userId, pusher.lastStreamOrdering, BATCH);
      if (batch.length === 0) {
        if (this.poked) continue;
        return;
      }
      for (const row of batch) {
        if (!(await this.deliver(pusher, row))) return;
      }
    }
  }

  /** Delivers one notification (retrying with back-off); false when the worker must stop. */
  private async deliver(pusher: store.PusherRow, row: actionsStore.PushActionRow): Promise<boolean> {
    const { db, config, logger } = this.deps;
    const body = await this.notificationBody(pusher, row);
    const url = typeof pusher.data.url === 'string' ? pusher.data.url : '';
    const firstTry = Date.now();
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) return false;
      const res = body ? await this.sender.post(url, body, this.abort.signal) : ({ kind: 'drop', status: 0 } as const);
      if (this.stopped) return false;
      if (res.kind === 'ok' && res.rejected.includes(pusher.pushkey)) {
        // The gateway says this pushkey is dead: the pusher goes (spec: "rejected").
        logger.info({ pusher: pusher.id, user: pusher.userId, app: pusher.appId }, 'push gateway rejected the pushkey: pusher removed');
        await store.deleteById(db, pusher.id);
        return false;
      }
      if (res.kind === 'drop' && body) logger.warn({ pusher: pusher.id, app: pusher.appId, status: res.status }, 'push gateway refused a notification: skipped');
      if (res.kind === 'retry' && Date.now() - firstTry >= config.giveUpAfterMs) {
        logger.warn({ pusher: pusher.id, app: pusher.appId, reason: res.reason }, 'push gateway failing too long: notification skipped');
      } else if (res.kind === 'retry') {
        const delay = Math.min(config.retryBaseMs * 2 ** Math.min(attempt, 30), config.retryMaxMs);
        logger.debug({ pusher: pusher.id, app: pusher.appId, reason: res.reason, delay }, 'push gateway unavailable: retrying');
        await sleep(delay * (0.9 + 0.2 * Math.random()), this.abort.signal);
        continue;
      }
      if (!(await store.advance(db, pusher.id, this.token, row.streamOrdering))) return false; // lease lost
      pusher.lastStreamOrdering = row.streamOrdering;
      return true;
    }
  }

  /** The /notify body (push gateway API), or null when the event is gone. */
  private async notificationBody(pusher: store.PusherRow, row: actionsStore.PushActionRow): Promise<Json | null> {
    const { db, notifications } = this.deps;
    const stored = await events.getEvent(db, row.eventId);
    if (!stored) return null;
    const ev = stored.event;
    const tweaks = tweaksOf(JSON.parse(row.actions) as PushAction[]);
    const unread = await notifications.totalUnread(db, pusher.userId);
    const { url: _url, ...data } = pusher.data;
    const n: Json = {
      event_id: ev.event_id,
      room_id: ev.room_id,
      // Encrypted events may hide a mention: high as well (as Synapse).
      prio: tweaks.highlight === true || tweaks.sound !== undefined || ev.type === 'm.room.encrypted' ? 'high' : 'low',
      counts: unread > 0 ? { unread } : {},
      devices: [{ app_id: pusher.appId, pushkey: pusher.pushkey, pushkey_ts: Math.floor(pusher.pushkeyTs / 1000), data, tweaks }],
    };
    if (pusher.data.format === 'event_id_only') return { notification: n };
    n.type = ev.type;
    n.sender = ev.sender;
    if (!stored.redactedBy) n.content = ev.content;
    if (ev.type === 'm.room.member') n.user_is_target = ev.state_key === pusher.userId;
    const st = await events.currentStateEvents(db, ev.room_id, ['m.room.name', 'm.room.canonical_alias']);
    const name = st.get('m.room.name')?.event.content.name;
    if (typeof name === 'string' && name !== '') n.room_name = name;
    const alias = st.get('m.room.canonical_alias')?.event.content.alias;
    if (typeof alias === 'string' && alias !== '') n.room_alias = alias;
    const member = (await events.currentStateEvents(db, ev.room_id, ['m.room.member'], ev.sender)).get('m.room.member');
    const displayname = member?.event.content.displayname;
    if (typeof displayname === 'string' && displayname !== '') n.sender_display_name = displayname;
    return { notification: n };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
