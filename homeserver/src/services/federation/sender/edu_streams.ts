/**
 * Local streams turned into outgoing EDUs: typing (`m.typing`), public read receipts
 * (`m.receipt`), presence (`m.presence`) and device/cross-signing changes
 * (`m.device_list_update`, `m.signing_key_update`) of our own users, queued for the servers
 * sharing a room with them. Each stream has a durable cursor advanced in the transaction that
 * queues its EDUs (the row lock serializes processes, so nothing is queued twice). The services
 * that own those streams need no hook: their notifier announcements wake this.
 */
import type { Logger } from '../../../core/logger.js';
import { parseUserId } from '../../../core/ids.js';
import type { Database, Sql } from '../../../storage/db.js';
import * as queue from '../../../storage/federation_queue.js';
import * as store from '../../../storage/federation_edus.js';
import { deviceHash, type FederationDevices, type LocalDevice } from '../devices.js';
import type { EduOutbox } from './outbox.js';
import type { RoomHosts } from './room_hosts.js';

export type EduStreamName = 'typing' | 'receipts' | 'presence' | 'deviceLists';
const STREAMS: EduStreamName[] = ['typing', 'receipts', 'presence', 'deviceLists'];
/** Stream rows turned into EDUs per transaction. */
const BATCH = 200;
/** The snapshot row holding the hash of a user's cross-signing keys. */
const CROSS_SIGNING = '';

const maxOf: Record<EduStreamName, (sql: Sql) => Promise<number>> = {
  typing: store.maxTypingStream,
  receipts: store.maxReceiptStream,
  presence: store.maxPresenceStream,
  deviceLists: store.maxDeviceListStream,
};

export class EduStreams {
  private readonly running = new Map<EduStreamName, Promise<void>>();
  private readonly again = new Set<EduStreamName>();
  private closed = false;

  constructor(
    private readonly deps: {
      db: Database;
      serverName: string;
      hosts: RoomHosts;
      outbox: EduOutbox;
      devices: FederationDevices;
      presenceEnabled: boolean;
      logger: Logger;
    },
  ) {}

  /** Creates the cursors at the streams' current ends (history is not sent), then catches up. */
  async start(): Promise<void> {
    for (const name of STREAMS) {
      await this.deps.db.transaction(async (tx) => queue.lockStreamCursor(tx, name, await maxOf[name](tx)));
      this.run(name);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.running.values()]);
  }

  /** The stream moved: turn its new rows into EDUs (one run per stream at a time). */
  run(name: EduStreamName): void {
    if (this.closed) return;
    if (this.running.has(name)) {
      this.again.add(name);
      return;
    }
    const p = (async () => {
      do {
        this.again.delete(name);
        while (!this.closed && (await this.step(name)));
      } while (this.again.has(name) && !this.closed);
    })()
      .catch((err: unknown) => this.deps.logger.warn({ err, stream: name }, 'queueing federation EDUs failed'))
      .finally(() => this.running.delete(name));
    this.running.set(name, p);
  }

  private isLocal(userId: string): boolean {
    return parseUserId(userId)?.serverName === this.deps.serverName;
  }

  /** One batch; true when there may be more. */
  private async step(name: EduStreamName): Promise<boolean> {
    await this.deps.hosts.refresh();
    // Device lists need reads outside the queueing transaction (the users' current keys).
    const prepared = name === 'deviceLists' ? await this.prepareDevices() : undefined;
    let more = false;
    const destinations = await this.deps.db.transaction(async (tx) => {
      const cursor = await queue.lockStreamCursor(tx, name, 0);
      const { edus, reached, count } = await this.collect(tx, name, cursor, prepared);
      more = count === BATCH;
      if (reached <= cursor) return [];
      const dests = await this.deps.outbox.queue(tx, edus);
      await queue.setStreamCursor(tx, name, reached);
      return dests;
    });
    this.deps.outbox.queued(destinations);
    return more;
  }

  private async collect(tx: Sql, name: EduStreamName, cursor: number, prepared?: Map<string, PreparedDevices>): Promise<{ edus: queue.OutboxEdu[]; reached: number; count: number }> {
    const hosts = this.deps.hosts;
    const edus: queue.OutboxEdu[] = [];
    const toRoom = (roomId: string, eduType: string, content: unknown, coalesceKey?: string) => {
      for (const destination of hosts.current(roomId)) edus.push({ destination, eduType, content: JSON.stringify(content), coalesceKey });
    };
    if (name === 'typing') {
      const rows = await store.typingAfter(tx, cursor, BATCH);
      for (const r of rows) if (this.isLocal(r.userId)) toRoom(r.roomId, 'm.typing', { room_id: r.roomId, user_id: r.userId, typing: r.typing }, `typing ${r.roomId} ${r.userId}`);
      return { edus, reached: rows.at(-1)?.streamId ?? cursor, count: rows.length };
    }
    if (name === 'receipts') {
      const rows = await store.readReceiptsAfter(tx, cursor, BATCH);
      for (const r of rows) {
        if (!this.isLocal(r.userId)) continue;
        const content = { [r.roomId]: { 'm.read': { [r.userId]: { event_ids: [r.eventId], data: r.data } } } };
        toRoom(r.roomId, 'm.receipt', content, `receipt ${r.roomId} ${r.userId} ${r.threadId}`);
      }
      return { edus, reached: rows.at(-1)?.streamId ?? cursor, count: rows.length };
    }
    if (name === 'presence') {
      const rows = await store.presenceAfter(tx, cursor, BATCH);
      const now = Date.now();
      for (const r of rows) {
        if (!this.deps.presenceEnabled || !this.isLocal(r.userId)) continue;
        const push = {
          user_id: r.userId,
          presence: r.state,
          last_active_ago: r.lastActiveTs > 0 ? Math.max(0, now - r.lastActiveTs) : undefined,
          currently_active: r.state === 'online' ? r.currentlyActive : undefined,
          status_msg: r.statusMsg ?? undefined,
        };
        for (const destination of await this.serversSharingWith(tx, r.userId)) {
          edus.push({ destination, eduType: 'm.presence', content: JSON.stringify({ push: [push] }), coalesceKey: `presence ${r.userId}` });
        }
      }
      return { edus, reached: rows.at(-1)?.streamId ?? cursor, count: rows.length };
    }
    // deviceLists: `prepared` was read for the rows after the cursor as it was then; if another
    // process moved the cursor meanwhile, this batch is skipped (and read again).
    const rows = await store.deviceChangesAfter(tx, cursor, BATCH);
    if (!prepared || [...prepared.values()].some((p) => p.cursor !== cursor)) return { edus, reached: cursor, count: BATCH };
    const users = [...new Set(rows.map((r) => r.userId))].filter((u) => this.isLocal(u));
    for (const userId of users) {
      const p = prepared.get(userId);
      if (!p) return { edus, reached: cursor, count: BATCH };
      const dests = await this.serversSharingWith(tx, userId);
      const snapshot = await store.deviceSnapshot(tx, userId);
      let streamId = await store.deviceStreamId(tx, userId);
      const updates: Record<string, unknown>[] = [];
      for (const d of p.devices) {
        const hash = deviceHash(d);
        if (snapshot.get(d.device_id) === hash) continue;
        await store.putDeviceSnapshot(tx, userId, d.device_id, hash);
        updates.push({ user_id: userId, device_id: d.device_id, ...(d.keys ? { keys: d.keys } : {}), ...(d.device_display_name ? { device_display_name: d.device_display_name } : {}) });
      }
      const current = new Set(p.devices.map((d) => d.device_id));
      for (const deviceId of snapshot.keys()) {
        if (deviceId === CROSS_SIGNING || current.has(deviceId)) continue;
        await store.putDeviceSnapshot(tx, userId, deviceId, null);
        updates.push({ user_id: userId, device_id: deviceId, deleted: true });
      }
      for (const u of updates) {
        // Each update follows on the previous one (spec: stream_id / prev_id).
        const content = { ...u, stream_id: streamId + 1, prev_id: streamId > 0 ? [streamId] : [] };
        streamId += 1;
        for (const destination of dests) edus.push({ destination, eduType: 'm.device_list_update', content: JSON.stringify(content) });
      }
      if (updates.length > 0) await store.setDeviceStreamId(tx, userId, streamId);
      const csHash = deviceHash({ device_id: CROSS_SIGNING, keys: p.crossSigning });
      if (snapshot.get(CROSS_SIGNING) !== csHash && Object.keys(p.crossSigning).length > 0) {
        await store.putDeviceSnapshot(tx, userId, CROSS_SIGNING, csHash);
        for (const destination of dests) {
          edus.push({ destination, eduType: 'm.signing_key_update', content: JSON.stringify({ user_id: userId, ...p.crossSigning }), coalesceKey: `signing ${userId}` });
        }
      }
    }
    return { edus, reached: rows.at(-1)?.streamId ?? cursor, count: rows.length };
  }

  /** Current devices and cross-signing keys of the local users changed after the cursor. */
  private async prepareDevices(): Promise<Map<string, PreparedDevices>> {
    const db = this.deps.db;
    const at = await queue.readStreamCursor(db, 'deviceLists');
    const out = new Map<string, PreparedDevices>();
    for (const r of await store.deviceChangesAfter(db, at, BATCH)) {
      if (!this.isLocal(r.userId) || out.has(r.userId)) continue;
      const list = await this.deps.devices.localDeviceList(r.userId);
      out.set(r.userId, { cursor: at, devices: list.devices, crossSigning: await this.deps.devices.localCrossSigning(r.userId) });
    }
    return out;
  }

  /** Other servers sharing at least one joined room with the user. */
  private async serversSharingWith(sql: Sql, userId: string): Promise<string[]> {
    const out = new Set<string>();
    for (const roomId of await queue.joinedRoomsOf(sql, userId)) for (const h of this.deps.hosts.current(roomId)) out.add(h);
    return [...out];
  }
}

interface PreparedDevices {
  cursor: number;
  devices: LocalDevice[];
  crossSigning: Record<string, unknown>;
}
