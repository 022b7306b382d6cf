import { randomUUID } from 'node:crypto';
import { MatrixError, badJson, invalidParam } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import { parseUserId } from '../../core/ids.js';
import type { Database, Sql } from '../../storage/db.js';
import type { Notifier } from '../../bus/notifier.js';
import type { Logger } from '../../core/logger.js';
import * as store from '../../storage/to_device.js';
import * as keysStore from '../../storage/e2e_keys.js';
import type { SyncPrepareRequest, SyncStream, SyncStreamContext, SyncStreamPart } from '../sync/streams.js';

/** Key of the advisory lock to-device writers hold until they commit ("todevc"); federation's inbound EDUs take it too. */
export const TO_DEVICE_LOCK = 0x746f64657663;

/** Transaction ids are remembered this long (a retry after that is a new request). */
const TXN_RETENTION_MS = 24 * 3600_000;
const TXN_PRUNE_INTERVAL_MS = 3600_000;

/**
 * Federation's durable EDU queue (services/federation/sender/outbox.ts): messages for other
 * servers' users go out as `m.direct_to_device`, queued in the request's transaction (so a retried
 * request queues nothing twice).
 */
export interface RemoteToDevice {
  queue(tx: Sql, edus: { destination: string; eduType: string; content: string }[]): Promise<string[]>;
  queued(destinations: string[]): void;
}

export interface ToDeviceLimits {
  /** Messages one request may carry, after `*` is expanded to the user's devices. */
  maxMessages: number;
  /** Largest content of one message (bytes of JSON). */
  maxContentBytes: number;
  /** Messages per sync response (spec recommends 100). */
  batch: number;
}

/**
 * Send-to-device messaging (spec: "Send-to-Device messaging"). Each message waits in its device's
 * inbox at a position of the to-device stream; a sync delivers the waiting ones (oldest first, a
 * bounded batch) and the next sync whose token has reached a message's position acknowledges
 * it: its prepare step deletes what the `since` token covers. A lost sync response is re-sent
 * because the client repeats the same `since`. Messages to unknown devices are dropped; those to
 * remote users go to `remote` (dropped without federation).
 */
export class ToDeviceService {
  private lastPrune = 0;

  /** Federation's EDU queue for remote targets (wired by services/index.ts). */
  remote?: RemoteToDevice;

  constructor(private readonly deps: { db: Database; notifier: Notifier; serverName: string; limits: ToDeviceLimits; logger: Logger }) {}

  async send(sender: { userId: string; deviceId: string }, type: string, txnId: string, body: JsonObject): Promise<void> {
    if (type === '' || Buffer.byteLength(type) > 255) throw invalidParam('Invalid event type');
    if (txnId === '' || txnId.length > 255) throw invalidParam('Invalid transaction id');
    const messages = body.messages;
    if (!isObject(messages)) throw badJson("'messages' must be an object");
    const { limits } = this.deps;
    const wanted: { userId: string; deviceId: string; content: string }[] = [];
    for (const [userId, devices] of Object.entries(messages)) {
      if (!parseUserId(userId)) throw invalidParam(`Invalid user id '${userId}'`);
      if (!isObject(devices)) throw badJson(`'messages.${userId}' must be an object`);
      for (const [deviceId, content] of Object.entries(devices)) {
        if (!isObject(content)) throw badJson(`The message to ${userId} ${deviceId} must be an object`);
        const text = JSON.stringify(content);
        if (Buffer.byteLength(text) > limits.maxContentBytes) throw new MatrixError(413, 'M_TOO_LARGE', `A message may be at most ${limits.maxContentBytes} bytes`);
        wanted.push({ userId, deviceId, content: text });
      }
    }
    const local = wanted.filter((w) => parseUserId(w.userId)!.serverName === this.deps.serverName);
    const now = Date.now();
    const remoteWanted = this.remote ? wanted.filter((w) => parseUserId(w.userId)!.serverName !== this.deps.serverName) : [];
    let remoteDestinations: string[] = [];
    const last = await this.deps.db.transaction(async (tx) => {
      if (!(await store.claimTxn(tx, sender.userId, sender.deviceId, txnId, now))) return 0;
      if (remoteWanted.length > 0) {
        if (remoteWanted.length > limits.maxMessages) throw new MatrixError(413, 'M_TOO_LARGE', `A request may reach at most ${limits.maxMessages} devices`);
        remoteDestinations = await this.remote!.queue(tx, remoteEdus(sender.userId, type, remoteWanted));
      }
      const existing = await store.existingDevices(tx, [...new Set(local.map((w) => w.userId))]);
      const out: store.ToDeviceMessage[] = [];
      for (const w of local) {
        const devices = existing.get(w.userId) ?? [];
        const targets = w.deviceId === '*' ? devices : devices.includes(w.deviceId) ? [w.deviceId] : [];
        for (const d of targets) out.push({ userId: w.userId, deviceId: d, sender: sender.userId, type, content: w.content });
      }
      if (out.length > limits.maxMessages) throw new MatrixError(413, 'M_TOO_LARGE', `A request may reach at most ${limits.maxMessages} devices`);
      if (out.length === 0) return 0;
      await tx.query('select pg_advisory_xact_lock(?)', [TO_DEVICE_LOCK]);
      const pos = await store.insertMessages(tx, out);
      return pos;
    });
    this.remote?.queued(remoteDestinations);
    if (last > 0) {
      const userIds = [...new Set(local.map((w) => w.userId))];
      this.deps.notifier.notify({ position: 0, streams: { toDevice: last }, roomIds: [], userIds });
    }
    if (now - this.lastPrune > TXN_PRUNE_INTERVAL_MS) {
      this.lastPrune = now;
      await store.pruneTxns(this.deps.db, now - TXN_RETENTION_MS).catch((err: unknown) => this.deps.logger.warn({ err }, 'pruning to-device txn ids failed'));
    }
  }

  /** Clears the inboxes of devices being deleted, inside the caller's transaction. */
  async devicesDeleted(tx: Sql, userId: string, deviceIds: string[]): Promise<void> {
    await store.deleteDevices(tx, userId, deviceIds);
  }

  /** The `toDevice` sync stream; it also reports the device's one-time key counts. */
  stream(): SyncStream {
    return new ToDeviceStream(this.deps.db, this.deps.limits.batch);
  }
}

/** One `m.direct_to_device` EDU per destination server (spec: server-server API, "Send-to-device messaging"). */
function remoteEdus(sender: string, type: string, wanted: { userId: string; deviceId: string; content: string }[]) {
  const byServer = new Map<string, Record<string, Record<string, unknown>>>();
  for (const w of wanted) {
    const server = parseUserId(w.userId)!.serverName;
    let messages = byServer.get(server);
    if (!messages) byServer.set(server, (messages = {}));
    (messages[w.userId] ??= {})[w.deviceId] = JSON.parse(w.content) as unknown;
  }
  return [...byServer].map(([destination, messages]) => ({
    destination,
    eduType: 'm.direct_to_device',
    content: JSON.stringify({ sender, type, message_id: randomUUID(), messages }),
  }));
}

class ToDeviceStream implements SyncStream {
  readonly name = 'toDevice' as const;
  constructor(
    private readonly db: Database,
    private readonly batch: number,
  ) {}

  position(sql: Sql, userId: string, deviceId: string): Promise<number> {
    return store.position(sql, userId, deviceId);
  }

  /** A sync from `since` proves the client has the messages up to it: delete them. */
  async prepare(req: SyncPrepareRequest): Promise<void> {
    if (req.since !== undefined && req.since > 0) await store.deleteDelivered(this.db, req.userId, req.deviceId, req.since);
  }

  async collect(ctx: SyncStreamContext): Promise<SyncStreamPart> {
    const from = ctx.since ?? 0;
    const rows = from >= ctx.upTo ? [] : await store.pending(ctx.sql, ctx.userId, ctx.deviceId, from, ctx.upTo, this.batch);
    const events = rows.map((r) => ({ sender: r.sender, type: r.type, content: JSON.parse(r.content) as JsonObject }));
    const counts = await keysStore.oneTimeKeyCounts(ctx.sql, ctx.userId, ctx.deviceId);
    // Clients read a missing count as "unknown"; Synapse reports 0 for the usual algorithm too.
    counts.signed_curve25519 ??= 0;
    const fallback = await keysStore.unusedFallbackKeyTypes(ctx.sql, ctx.userId, ctx.deviceId);
    const capped = rows.length === this.batch && rows[rows.length - 1]!.streamId < ctx.upTo;
    return {
      top: { to_device: { events }, device_one_time_keys_count: counts, device_unused_fallback_key_types: fallback },
      reached: capped ? rows[rows.length - 1]!.streamId : undefined,
      nonEmpty: events.length > 0,
    };
  }
}
