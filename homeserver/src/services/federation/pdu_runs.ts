/**
 * The PDUs of one `/send` transaction, with the room's linear runs persisted together: a run is
 * consecutive PDUs of one room where each PDU's only prev event is the PDU before it (the first's
 * only prev event has a stored DAG state). Such a run is written in ONE transaction holding the
 * stream lock instead of one per PDU (one lock, one commit, one wake of the notifier and of the
 * services it drives), with the outcome of every PDU exactly what handling them one by one gives:
 *
 * - Checks 1-3 (format, signatures, hash) ran for the whole transaction first (no database write).
 * - Outside the lock, for the whole run at once: whether each PDU is known, the room's server ACL,
 *   and check 4 (auth against its auth events). A PDU joins the run only when that check cannot
 *   depend on the PDUs before it: it is not stored yet, the ACL admits its server, and its auth
 *   events are all stored and none is in the run. Otherwise the run ends before it and it is
 *   handled alone (FederationEventHandler.finish), as are PDUs that are not part of any run.
 * - A run also ends after a redaction or a server ACL event, which can change what check 4 or the
 *   ACL check of the next PDUs read.
 * - Under the lock, per PDU in order: check 5 against the DAG state after the previous PDU (written
 *   in this same transaction) and FederatedEventStore.persistIn (check 6, state, extremities,
 *   stream position), the same code as a PDU on its own; so a rejected or soft-failed PDU affects
 *   the next ones exactly as it would sequentially (its DAG state is what they are built on).
 * - If anything throws inside the run's transaction, it rolls back and the run's PDUs are handled
 *   one by one instead (nothing of the failed attempt remains; the notifier was not woken).
 *
 * A crash before the commit leaves nothing; after it, a retried transaction finds the PDUs stored
 * (`duplicate`, or `rejected` for a rejected one), which answers the same as the first time.
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import * as fed from '../../storage/federated_events.js';
import { checkAuthAgainstAuthEvents } from '../rooms/auth_rules.js';
import { ruleAuthEventIds } from '../rooms/room_v12.js';
import { domainOf } from '../rooms/power_levels.js';
import { loadRuleEvents } from '../rooms/state_loader.js';
import type { PersistOutcome } from '../rooms/federated_events.js';
import { THIRD_PARTY_AUTH } from '../identity/signed.js';
import { roomAclAllows } from './acl.js';
import { PduRefused, type FederationEventHandler } from './event_handler.js';
import type { JsonObject } from '../../core/canonical_json.js';
import { eventIdFor } from '../rooms/event_format.js';
import type { RoomVersionId } from '../rooms/pdu.js';
import type { VerifiedEvent } from '../rooms/federated_events.js';

/** The /send answer for one PDU: its event id and, when refused or rejected, why. */
export interface PduAnswer {
  eventId: string;
  error?: string;
}

/** A PDU after checks 1-3: `verified` (with its room version), or the `error` it is answered with. */
export interface PreparedPdu {
  eventId: string;
  verified?: VerifiedEvent & { redacted: boolean };
  version?: RoomVersionId;
  error?: string;
}

const answerFor = (eventId: string, outcome: PersistOutcome): PduAnswer => (outcome === 'rejected' ? { eventId, error: 'rejected by the authorization rules' } : { eventId });
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Runs shorter than this are handled PDU by PDU (nothing to share). */
const MIN_RUN = 2;

type Verified = PreparedPdu & Required<Pick<PreparedPdu, 'verified' | 'version'>>;

export class PduRuns {
  constructor(private readonly deps: { db: Database; handler: FederationEventHandler; logger: Logger }) {}

  /** The answers of a transaction's PDUs, in order (never throws). */
  async receiveAll(origin: string, raws: unknown[]): Promise<PduAnswer[]> {
    const prepared: PreparedPdu[] = [];
    for (const raw of raws) prepared.push(await this.prepare(origin, raw));
    const answers: PduAnswer[] = [];
    let i = 0;
    while (i < prepared.length) {
      const run = await this.runAt(prepared, i);
      if (run && run.pdus.length >= MIN_RUN) {
        const outcomes = await this.persistRun(run.pdus, run.firstBefore);
        if (outcomes) {
          run.pdus.forEach((p, k) => answers.push(answerFor(p.eventId, outcomes[k]!)));
        } else {
          for (const p of run.pdus) answers.push(await this.finish(origin, p));
        }
        i += run.pdus.length;
        continue;
      }
      answers.push(await this.finish(origin, prepared[i]!));
      i++;
    }
    return answers;
  }

  /** Checks 1-3 of one PDU (no database write): verified, or its answer (the event id, or a best guess). Never throws. */
  private async prepare(origin: string, raw: unknown): Promise<PreparedPdu> {
    const h = this.deps.handler;
    const roomId = isObject(raw) && typeof raw.room_id === 'string' ? raw.room_id : undefined;
    const version = roomId ? await h.roomVersion(roomId) : undefined;
    let eventId = '';
    try {
      eventId = isObject(raw) ? eventIdFor(raw, version ?? '11') : '';
    } catch {
      // not hashable: refused below
    }
    try {
      if (!roomId || !version) throw new PduRefused('unknown room');
      const v = await h.verify(raw, version);
      return { eventId: v.event.event_id, verified: v, version };
    } catch (err) {
      if (!(err instanceof PduRefused)) this.deps.logger.warn({ err, origin, eventId }, 'failed to handle a PDU');
      return { eventId, error: err instanceof PduRefused ? err.message : 'internal error' };
    }
  }

  /** Checks 4-6 and persistence of a prepared PDU on its own (FederationEventHandler.handle). Never throws. */
  private async finish(origin: string, p: PreparedPdu): Promise<PduAnswer> {
    if (!p.verified || !p.version) return { eventId: p.eventId, error: p.error ?? 'internal error' };
    try {
      return answerFor(p.eventId, await this.deps.handler.handle(origin, p.verified, p.version));
    } catch (err) {
      if (!(err instanceof PduRefused)) this.deps.logger.warn({ err, origin, eventId: p.eventId }, 'failed to handle a PDU');
      return { eventId: p.eventId, error: err instanceof PduRefused ? err.message : 'internal error' };
    }
  }

  /** The batchable run starting at `start` (see the file comment), with the DAG state its first PDU is built on. */
  private async runAt(prepared: PreparedPdu[], start: number): Promise<{ pdus: Verified[]; firstBefore: number } | undefined> {
    const isVerified = (p: PreparedPdu | undefined): p is Verified => !!p?.verified && !!p.version;
    const first = prepared[start];
    if (!isVerified(first) || first.verified.event.prev_events.length !== 1) return undefined;
    const roomId = first.verified.event.room_id;
    // The chain shape, judged on the PDUs alone.
    const window: Verified[] = [first];
    for (let j = start + 1; j < prepared.length; j++) {
      const p = prepared[j];
      const last = window[window.length - 1]!.verified.event;
      if (last.type === 'm.room.server_acl' || last.type === 'm.room.redaction') break;
      if (!isVerified(p)) break;
      const ev = p.verified.event;
      if (ev.room_id !== roomId || ev.prev_events.length !== 1 || ev.prev_events[0] !== last.event_id) break;
      window.push(p);
    }
    if (window.length < MIN_RUN) return undefined;
    const version = first.version;
    const ids = window.map((p) => p.eventId);
    const inWindow = new Set(ids);
    const authIds = [...new Set(window.flatMap((p) => ruleAuthEventIds(p.verified.event, version)))];
    const servers = [...new Set(window.map((p) => domainOf(p.verified.event.sender)!))];
    const db = this.deps.db;
    const [known, auth, dag, acl] = await Promise.all([
      fed.knownEvents(db, ids),
      loadRuleEvents(db, authIds.filter((id) => !inWindow.has(id)), version),
      fed.dagStates(db, first.verified.event.prev_events),
      Promise.all(servers.map(async (s) => [s, await roomAclAllows(db, roomId, s)] as const)),
    ]);
    const firstBefore = dag.get(first.verified.event.prev_events[0]!)?.after;
    if (firstBefore === undefined || firstBefore === null) return undefined;
    const allowed = new Map(acl);
    const pdus: Verified[] = [];
    for (const p of window) {
      const ev = p.verified.event;
      if (p.version !== version || known.has(p.eventId) || !allowed.get(domainOf(ev.sender)!)) break;
      const needs = ruleAuthEventIds(ev, version);
      if (needs.some((id) => inWindow.has(id) || !auth.events.has(id))) break;
      const verdict = checkAuthAgainstAuthEvents(ev, (id) => auth.events.get(id), version, { ...THIRD_PARTY_AUTH, isRejected: (id) => auth.rejected.has(id) });
      if (!verdict.allowed) break;
      pdus.push(p);
    }
    return { pdus, firstBefore };
  }

  /** Checks 5-6 and persistence of a run in one locked transaction; undefined when it failed (rolled back). */
  private async persistRun(pdus: Verified[], firstBefore: number): Promise<PersistOutcome[] | undefined> {
    const h = this.deps.handler;
    try {
      return await h.store.locked(async (tx, changes) => {
        changes.remoteOnly = pdus.every((p) => h.isRemote(p.verified.event));
        const outcomes: PersistOutcome[] = [];
        let before = firstBefore;
        for (const p of pdus) {
          const ev = p.verified.event;
          const verdict = await h.authAgainstSnapshot(tx, ev, p.version, before);
          const outcome = await h.store.persistIn(tx, changes, { ...p.verified, version: p.version, beforeSnapshot: before, rejectedReason: verdict.allowed ? undefined : verdict.reason });
          outcomes.push(outcome);
          // The next PDU is built on this one: its DAG state after (written above, or already
          // stored when another process persisted the same PDU meanwhile: a duplicate).
          const after = changes.dagAfter.get(ev.event_id) ?? (await fed.dagStates(tx, [ev.event_id])).get(ev.event_id)?.after;
          if (after === undefined || after === null) throw new Error(`no DAG state after ${ev.event_id}`);
          before = after;
        }
        return outcomes;
      });
    } catch (err) {
      this.deps.logger.warn({ err, pdus: pdus.length }, 'a run of PDUs failed as one transaction: handling them one by one');
      return undefined;
    }
  }
}
