/**
 * `timestamp_to_event` between servers (spec: server-server API, events.yaml
 * `/timestamp_to_event/{roomId}`; client side: room_event_by_timestamp.yaml).
 *
 * Serving: the event closest to `ts` in direction `dir` among those the asking server may see
 * (history visibility for servers, server_visibility.ts), for servers in the room.
 *
 * Asking (the client endpoint's `RemoteTimestampLookup`): our answer may be incomplete when we have
 * no event in that direction, or when the closest one sits next to a gap in the history we hold —
 * for `f` a missing prev_event right before it (e.g. our join with nothing backfilled), for `b`
 * no timeline event after it although it is not among the newest. Then a few of the room's other
 * servers are asked (the room id's server first, often the oldest resident); an answer closer than
 * ours, judged by the event's own `origin_server_ts` once we hold it, wins. An event we do not hold
 * is got by one backfill round and, failing that, fetched alone (`/event`, verified and
 * auth-checked as backfill does), so the client can go on with `/context`.
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { notFound } from '../../core/errors.js';
import * as events from '../../storage/events.js';
import type { StoredEvent } from '../../storage/events.js';
import * as fed from '../../storage/federated_events.js';
import { nextToBackwardGap, nextToForwardGap } from '../../storage/federation_lookups.js';
import { closestByTimestamp, type RemoteTimestampLookup, type TimestampLookupLimits } from '../rooms/timestamp_to_event.js';
import { checkAuthAgainstAuthEvents } from '../rooms/auth_rules.js';
import { ruleAuthEventIds } from '../rooms/room_v12.js';
import { loadRuleEvents } from '../rooms/state_loader.js';
import type { RoomVersionId } from '../rooms/pdu.js';
import type { FederationClient } from './client.js';
import type { FederationEventHandler } from './event_handler.js';
import type { FederationRoomReads } from './room_reads.js';
import type { BackfillService } from './backfill.js';

export interface FederationTimestampDeps {
  db: Database;
  serverName: string;
  client: FederationClient;
  events: FederationEventHandler;
  reads: FederationRoomReads;
  backfill: BackfillService;
  logger: Logger;
  /** Most other servers asked per client request (HEARTH_FEDERATION_TIMESTAMP_MAX_SERVERS). */
  maxServers: number;
  /** Events one backfill round asks for. */
  backfillLimit: number;
  /** How much of our history one served request may scan (the client endpoint's limits). */
  scan?: TimestampLookupLimits;
}

const domainOfRoom = (roomId: string): string | undefined => {
  const i = roomId.indexOf(':');
  return i > 0 ? roomId.slice(i + 1) : undefined;
};

export class FederationTimestamps implements RemoteTimestampLookup {
  constructor(private readonly deps: FederationTimestampDeps) {}

  /** `GET /_matrix/federation/v1/timestamp_to_event/{roomId}` for `origin`. */
  async serve(origin: string, roomId: string, ts: number, dir: 'f' | 'b'): Promise<{ event_id: string; origin_server_ts: number }> {
    const { db, reads } = this.deps;
    await reads.authorize(origin, roomId);
    const visible = async (page: StoredEvent[]) => {
      const out: StoredEvent[] = [];
      for (const s of page) if (await reads.visibleTo(db, origin, s.event.event_id)) out.push(s);
      return out;
    };
    const found = await closestByTimestamp(db, roomId, { ts, dir, upTo: Number.MAX_SAFE_INTEGER }, visible, this.deps.scan);
    if (!found) throw notFound(`Unable to find event from ${ts} in ${dir === 'f' ? 'forward' : 'backward'} direction`);
    return { event_id: found.event.event_id, origin_server_ts: found.event.origin_server_ts };
  }

  /** RemoteTimestampLookup: never throws (a failure leaves the local answer). */
  async closer(roomId: string, ts: number, dir: 'f' | 'b', local: StoredEvent | undefined): Promise<StoredEvent | undefined> {
    try {
      return await this.askOthers(roomId, ts, dir, local);
    } catch (err) {
      this.deps.logger.info({ err, roomId }, 'timestamp_to_event: asking other servers failed');
      return undefined;
    }
  }

  private async askOthers(roomId: string, ts: number, dir: 'f' | 'b', local: StoredEvent | undefined): Promise<StoredEvent | undefined> {
    const { db, serverName } = this.deps;
    if (this.deps.maxServers === 0) return undefined;
    const version = await this.deps.events.roomVersion(roomId);
    if (!version) return undefined;
    if (local) {
      const gap = dir === 'f' ? await nextToBackwardGap(db, local.event.event_id) : await nextToForwardGap(db, roomId, local.event.event_id);
      if (!gap) return undefined;
    }
    const joined = (await fed.joinedServers(db, roomId)).filter((s) => s !== serverName);
    const first = domainOfRoom(roomId);
    const servers = [...joined.filter((s) => s === first), ...joined.filter((s) => s !== first)].slice(0, this.deps.maxServers);
    const distance = (s: StoredEvent) => Math.abs(s.event.origin_server_ts - ts);
    for (const server of servers) {
      let eventId: unknown;
      try {
        const res = await this.deps.client.request({
          destination: server,
          method: 'GET',
          path: `/_matrix/federation/v1/timestamp_to_event/${encodeURIComponent(roomId)}`,
          query: { ts: String(ts), dir },
        });
        eventId = res.event_id;
      } catch (err) {
        this.deps.logger.debug({ err, server, roomId }, 'timestamp_to_event: no answer');
        continue;
      }
      if (typeof eventId !== 'string') continue;
      const held = (await this.held(roomId, eventId)) ?? (await this.obtain(server, roomId, eventId, version));
      if (!held) continue;
      // Judged by the event itself, not by what the server claimed; it must lie in the asked direction.
      const t = held.event.origin_server_ts;
      if (dir === 'f' ? t < ts : t > ts) continue;
      if (!local || distance(held) < distance(local)) return held;
    }
    return undefined;
  }

  /** The event if we hold it in the room's timeline (not rejected, with a position). */
  private async held(roomId: string, eventId: string): Promise<StoredEvent | undefined> {
    const s = await events.getEvent(this.deps.db, eventId);
    return s && s.event.room_id === roomId && !s.rejected && s.streamOrdering !== null ? s : undefined;
  }

  /** One backfill round (keeps history in order); failing that, the event alone as a backfilled event. */
  private async obtain(server: string, roomId: string, eventId: string, version: RoomVersionId): Promise<StoredEvent | undefined> {
    const { db, events: handler } = this.deps;
    await this.deps.backfill.backfill(roomId, this.deps.backfillLimit).catch(() => 0);
    const got = await this.held(roomId, eventId);
    if (got) return got;
    const v = await handler.fetchEvent(server, eventId, version);
    if (!v || v.event.room_id !== roomId) return undefined;
    try {
      await handler.fetchAuthChain(server, v.event, version);
    } catch {
      // checked below: missing auth events reject the event
    }
    const { events: authEvents, rejected } = await loadRuleEvents(db, ruleAuthEventIds(v.event, version), version); // v12: + the implied create
    const verdict = checkAuthAgainstAuthEvents(v.event, (id) => authEvents.get(id), version, { isRejected: (id) => rejected.has(id) });
    if (!verdict.allowed) return undefined;
    await handler.store.persistBackfilled([v], await fed.earliestStateBefore(db, roomId), version);
    return this.held(roomId, eventId);
  }
}
