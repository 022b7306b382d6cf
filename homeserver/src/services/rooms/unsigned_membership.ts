import type { Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as state from '../../storage/state.js';
import type { StoredEvent } from '../../storage/events.js';
import { stateKey } from './pdu.js';

/**
 * `unsigned.membership` (spec v1.11, MSC4115): the requesting user's membership in the state after
 * each event (so including the event's own change), `leave` when they had no member event yet.
 * Events sharing a state snapshot share the answer: one snapshot read per distinct snapshot.
 */
export async function membershipsAt(sql: Sql, userId: string, stored: StoredEvent[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const bySnapshot = new Map<number, string>();
  const key = stateKey('m.room.member', userId);
  for (const s of stored) {
    if (s.stateAfter === null) continue;
    let m = bySnapshot.get(s.stateAfter);
    if (m === undefined) {
      const memberId = (await state.loadSnapshotKeys(sql, s.stateAfter, [['m.room.member', userId]])).get(key);
      // The stored content: redaction keeps `membership`, so a redacted member event answers too.
      const content = memberId ? (await events.getEvent(sql, memberId))?.event.content : undefined;
      m = typeof content?.membership === 'string' ? content.membership : 'leave';
      bySnapshot.set(s.stateAfter, m);
    }
    out.set(s.event.event_id, m);
  }
  return out;
}
