/**
 * Backfill (spec: server-server API "Backfilling and retrieving missing events"): when a local
 * user pages back (/messages) past the oldest event we hold — history from before we joined — we
 * ask a server in the room for the events before our backward extremities, check them (format,
 * signatures, hashes, auth against their auth events) and store them at *negative* stream
 * positions (events_backfill_seq, counting down): below every live position, so no sync ever sees
 * them as new (sync ranges start at 0) while /messages, which orders by position, finds them
 * further back. They change neither current state nor forward extremities. Their history
 * visibility is judged by the state at our join (the oldest state we hold), an approximation the
 * spec allows since we cannot know more without asking for the state at each of them.
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import * as fed from '../../storage/federated_events.js';
import { checkAuthAgainstAuthEvents } from '../rooms/auth_rules.js';
import { ruleAuthEventIds } from '../rooms/room_v12.js';
import { loadRuleEvents } from '../rooms/state_loader.js';
import type { VerifiedEvent } from '../rooms/federated_events.js';
import type { FederationClient } from './client.js';
import type { FederationEventHandler } from './event_handler.js';
import { THIRD_PARTY_AUTH } from '../identity/signed.js'; // auth rule 4.4.1.7's signature check

const MAX_BACKWARD_EXTREMITIES = 5;

export class BackfillService {
  constructor(private readonly deps: { db: Database; serverName: string; client: FederationClient; events: FederationEventHandler; logger: Logger; limit: number }) {}

  /** Fetches up to `limit` older events of the room; returns how many were stored (0: nothing more to get). */
  async backfill(roomId: string, limit: number): Promise<number> {
    const db = this.deps.db;
    const version = await this.deps.events.roomVersion(roomId);
    if (!version) return 0;
    const from = await fed.backwardExtremities(db, roomId, MAX_BACKWARD_EXTREMITIES);
    if (from.length === 0) return 0;
    const servers = (await fed.joinedServers(db, roomId)).filter((s) => s !== this.deps.serverName);
    const n = Math.min(Math.max(limit, 1), this.deps.limit);
    for (const server of servers) {
      let res;
      try {
        res = await this.deps.client.request({ destination: server, method: 'GET', path: `/_matrix/federation/v1/backfill/${encodeURIComponent(roomId)}`, query: { v: from, limit: n } });
      } catch (err) {
        this.deps.logger.info({ err, server, roomId }, 'backfill request failed');
        continue;
      }
      const raws = (Array.isArray(res.pdus) ? res.pdus : []).slice(0, n);
      const got = (await this.deps.events.verifyAll(raws, version)).filter((v) => v.event.room_id === roomId);
      const checked: (VerifiedEvent & { rejectedReason?: string })[] = [];
      for (const v of got) {
        try {
          await this.deps.events.fetchAuthChain(server, v.event, version);
        } catch {
          // checked below: missing auth events reject the event
        }
        const { events, rejected } = await loadRuleEvents(db, ruleAuthEventIds(v.event, version), version); // v12: + the implied create
        const verdict = checkAuthAgainstAuthEvents(v.event, (id) => events.get(id), version, { ...THIRD_PARTY_AUTH, isRejected: (id) => rejected.has(id) });
        checked.push(verdict.allowed ? v : { ...v, rejectedReason: verdict.reason });
      }
      // Newest first: positions count down, so older events end up further back.
      checked.sort((a, b) => b.event.depth - a.event.depth);
      const stateAfter = await fed.earliestStateBefore(db, roomId);
      const stored = await this.deps.events.store.persistBackfilled(checked, stateAfter, version);
      return stored.length;
    }
    return 0;
  }
}
