/**
 * EDUs of incoming transactions (FederationEduHandler, called by PUT /send/{txnId}): typing,
 * receipts, presence, device-list and signing-key updates, to-device messages. A server speaks
 * only for its own users, and typing/receipts only count in rooms where that user is joined. One
 * bad EDU is logged and skipped; it never fails the others.
 */
import type { Logger } from '../../core/logger.js';
import { MatrixError } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import { parseUserId } from '../../core/ids.js';
import type { Database } from '../../storage/db.js';
import type { Notifier } from '../../bus/notifier.js';
import * as stateStore from '../../storage/state.js';
import * as toDeviceStore from '../../storage/to_device.js';
import * as store from '../../storage/federation_edus.js';
import { TO_DEVICE_LOCK } from '../e2e/to_device.js';
import type { TypingService } from '../ephemeral/typing.js';
import type { ReceiptService } from '../ephemeral/receipts.js';
import { PRESENCE_STATES, type PresenceService } from '../presence.js';
import type { Edu, FederationEduHandler } from './seams.js';
import type { FederationDevices } from './devices.js';

/** Remote presence without news for this long turns offline. */
const REMOTE_PRESENCE_TIMEOUT_MS = 30 * 60_000;
/** To-device message ids are remembered this long (an origin retrying later is not deduplicated). */
const TO_DEVICE_ID_RETENTION_MS = 24 * 3600_000;

export interface EduHandlerDeps {
  db: Database;
  notifier: Notifier;
  serverName: string;
  typing: TypingService;
  receipts: ReceiptService;
  presence: PresenceService;
  devices: FederationDevices;
  /** Largest to-device message content accepted (bytes of JSON). */
  maxToDeviceContentBytes: number;
  logger: Logger;
}

/** Why an EDU was not applied (logged; the transaction goes on). */
class EduRefused extends Error {}

export class EduHandler implements FederationEduHandler {
  private lastPrune = 0;

  constructor(private readonly deps: EduHandlerDeps) {}

  async receive(origin: string, edus: readonly Edu[]): Promise<void> {
    for (const edu of edus) {
      try {
        if (!isObject(edu) || typeof edu.edu_type !== 'string' || !isObject(edu.content)) throw new EduRefused('malformed EDU');
        await this.apply(origin, edu.edu_type, edu.content);
      } catch (err) {
        const expected = err instanceof EduRefused || err instanceof MatrixError;
        this.deps.logger[expected ? 'debug' : 'warn']({ err: expected ? (err as Error).message : err, origin, eduType: (edu as { edu_type?: unknown }).edu_type }, 'EDU not applied');
      }
    }
  }

  private async apply(origin: string, type: string, c: JsonObject): Promise<void> {
    switch (type) {
      case 'm.typing':
        return this.typing(origin, c);
      case 'm.receipt':
        return this.receipt(origin, c);
      case 'm.presence':
        return this.presence(origin, c);
      case 'm.device_list_update':
        this.ownUser(origin, c.user_id);
        return this.deps.devices.deviceListUpdate(c);
      case 'm.signing_key_update':
        this.ownUser(origin, c.user_id);
        return this.deps.devices.signingKeyUpdate(c);
      case 'm.direct_to_device':
        return this.toDevice(origin, c);
      default:
        // Unknown EDU types are ignored (spec: servers may send others).
        return;
    }
  }

  /** The user id must be a user of `origin`: a server speaks only for its own users. */
  private ownUser(origin: string, userId: unknown): string {
    if (typeof userId !== 'string' || parseUserId(userId)?.serverName !== origin) throw new EduRefused(`${String(userId)} is not a user of ${origin}`);
    return userId;
  }

  private async joined(roomId: unknown, userId: string): Promise<string> {
    if (typeof roomId !== 'string' || (await stateStore.getMembership(this.deps.db, roomId, userId)) !== 'join') throw new EduRefused(`${userId} is not joined to ${String(roomId)}`);
    return roomId;
  }

  private async typing(origin: string, c: JsonObject): Promise<void> {
    const userId = this.ownUser(origin, c.user_id);
    const roomId = await this.joined(c.room_id, userId);
    if (typeof c.typing !== 'boolean') throw new EduRefused("'typing' must be a boolean");
    // Remote notices carry no timeout: the default applies, and their server sends the stop.
    await this.deps.typing.set(userId, roomId, userId, c.typing, undefined);
  }

  /** `{room_id: {"m.read": {user_id: {event_ids, data}}}}`; other receipt types are not federated. */
  private async receipt(origin: string, c: JsonObject): Promise<void> {
    for (const [roomId, byType] of Object.entries(c)) {
      const reads = isObject(byType) ? byType['m.read'] : undefined;
      if (!isObject(reads)) continue;
      for (const [userId, r] of Object.entries(reads)) {
        try {
          this.ownUser(origin, userId);
          await this.joined(roomId, userId);
          if (!isObject(r) || !Array.isArray(r.event_ids) || typeof r.event_ids[0] !== 'string') throw new EduRefused('malformed receipt');
          const thread = isObject(r.data) && typeof r.data.thread_id === 'string' ? r.data.thread_id : undefined;
          await this.deps.receipts.receipt(userId, roomId, 'm.read', r.event_ids[0], thread);
        } catch (err) {
          if (!(err instanceof EduRefused || err instanceof MatrixError)) throw err;
          this.deps.logger.debug({ origin, userId, roomId, err: err.message }, 'receipt not applied');
        }
      }
    }
  }

  private async presence(origin: string, c: JsonObject): Promise<void> {
    if (!Array.isArray(c.push)) throw new EduRefused("'push' must be an array");
    for (const p of c.push) {
      if (!isObject(p)) continue;
      const userId = this.ownUser(origin, p.user_id);
      if (!PRESENCE_STATES.includes(p.presence as never)) continue;
      // Only presence of users some local user can see (shares a room with) is kept.
      if (!(await store.sharesRoomWithLocal(this.deps.db, userId, this.deps.serverName))) continue;
      await this.deps.presence.setRemote(
        userId,
        {
          presence: p.presence as 'online',
          ...(Number.isSafeInteger(p.last_active_ago) && (p.last_active_ago as number) >= 0 ? { last_active_ago: p.last_active_ago as number } : {}),
          currently_active: p.currently_active === true,
          ...(typeof p.status_msg === 'string' ? { status_msg: p.status_msg.slice(0, 1024) } : {}),
        },
        REMOTE_PRESENCE_TIMEOUT_MS,
      );
    }
  }

  /** `m.direct_to_device`: delivered to our users' devices once per (origin, message_id). */
  private async toDevice(origin: string, c: JsonObject): Promise<void> {
    const sender = this.ownUser(origin, c.sender);
    if (typeof c.type !== 'string' || c.type === '' || typeof c.message_id !== 'string' || c.message_id === '' || !isObject(c.messages)) {
      throw new EduRefused('malformed m.direct_to_device');
    }
    const type = c.type;
    const messages = c.messages;
    const messageId = c.message_id;
    const { db, serverName } = this.deps;
    const now = Date.now();
    const wanted: { userId: string; deviceId: string; content: string }[] = [];
    for (const [userId, devices] of Object.entries(messages)) {
      if (parseUserId(userId)?.serverName !== serverName || !isObject(devices)) continue;
      for (const [deviceId, content] of Object.entries(devices)) {
        if (!isObject(content)) continue;
        const text = JSON.stringify(content);
        if (Buffer.byteLength(text) <= this.deps.maxToDeviceContentBytes) wanted.push({ userId, deviceId, content: text });
      }
    }
    const users = [...new Set(wanted.map((w) => w.userId))];
    const last = await db.transaction(async (tx) => {
      if (!(await store.claimReceivedToDevice(tx, origin, messageId, now))) return 0;
      const existing = await toDeviceStore.existingDevices(tx, users);
      const out: toDeviceStore.ToDeviceMessage[] = [];
      for (const w of wanted) {
        const devices = existing.get(w.userId) ?? [];
        const targets = w.deviceId === '*' ? devices : devices.includes(w.deviceId) ? [w.deviceId] : [];
        for (const d of targets) out.push({ userId: w.userId, deviceId: d, sender, type, content: w.content });
      }
      if (out.length === 0) return 0;
      await tx.query('select pg_advisory_xact_lock(?)', [TO_DEVICE_LOCK]);
      return toDeviceStore.insertMessages(tx, out);
    });
    if (last > 0) this.deps.notifier.notify({ position: 0, streams: { toDevice: last }, roomIds: [], userIds: users });
    if (now - this.lastPrune > 3600_000) {
      this.lastPrune = now;
      await store.pruneReceivedToDevice(db, now - TO_DEVICE_ID_RETENTION_MS);
    }
  }
}
