/**
 * One destination's transaction loop: at most one transaction in flight per destination (in this
 * process by `running`, across processes by the lease row), at most 50 PDUs and 100 EDUs each,
 * the cursor and the outbox moving only after a 200. Failures back off exponentially with jitter;
 * the first transaction after an outage catches up (newest events per room only).
 */
import type { FederationSenderConfig } from '../../../core/config.js';
import type { Logger } from '../../../core/logger.js';
import type { JsonObject } from '../../../core/canonical_json.js';
import type { Database } from '../../../storage/db.js';
import * as store from '../../../storage/federation_queue.js';
import { FederationError, type FederationClient } from '../client.js';
import type { RoomHosts } from './room_hosts.js';
import { WakeTimer } from '../../../core/wake_timer.js';

/** Spec: a transaction carries at most 50 PDUs and 100 EDUs. */
export const MAX_PDUS_PER_TXN = 50;
export const MAX_EDUS_PER_TXN = 100;
/** How soon a process retries a destination whose lease another process holds. */
const LEASE_RETRY_MS = 2000;
/** Typing notices older than this are not worth sending any more. */
const TYPING_MAX_AGE_MS = 60_000;

export interface SenderContext {
  db: Database;
  client: FederationClient;
  hosts: RoomHosts;
  serverName: string;
  config: FederationSenderConfig;
  /** This process's lease owner id. */
  owner: string;
  /** How long a lease lasts (longer than one request may take). */
  leaseMs: number;
  logger: Logger;
}

/** The back-off after `failures` consecutive failures: base·2^(n-1), capped, ±50% jitter. */
export function backoffMs(config: FederationSenderConfig, failures: number, random = Math.random()): number {
  const exp = Math.min(config.retryMaxMs, config.retryBaseMs * 2 ** Math.min(failures - 1, 40));
  return Math.max(1, Math.round(exp * (0.5 + random)));
}

export class DestinationQueue {
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  private readonly wake = new WakeTimer(() => this.kick());

  constructor(
    private readonly ctx: SenderContext,
    readonly destination: string,
  ) {}

  /** Something may be waiting for this destination: send it now (or once the current transaction is done). */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
      // A kick that came while the lease was being released must not be lost.
      if (this.again) this.kick();
    });
  }

  /** Stops the timers and waits for the transaction in flight. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake.stop();
    await this.running;
  }

  private async loop(): Promise<void> {
    const { db, logger, owner } = this.ctx;
    try {
      do {
        this.again = false;
        while (!this.closed && (await this.step()));
      } while (this.again && !this.closed);
    } catch (err) {
      logger.warn({ err, destination: this.destination }, 'federation sender step failed');
      this.wake.at(Date.now() + this.ctx.config.retryBaseMs);
    } finally {
      await store.releaseLease(db, this.destination, owner).catch((err: unknown) => logger.warn({ err }, 'releasing a federation lease failed'));
    }
  }


  /** Sends one transaction if there is anything; true when there may be more. */
  private async step(): Promise<boolean> {
    const { db, hosts, serverName, config } = this.ctx;
    const d = this.destination;
    const now = Date.now();
    const row = await store.claimLease(db, d, this.ctx.owner, now, now + this.ctx.leaseMs);
    if (!row) {
      const cur = await store.getDestination(db, d);
      if (cur) this.wake.at(Math.min(cur.leaseUntilTs + 1, now + LEASE_RETRY_MS));
      return false;
    }
    if (row.retryUntilTs > now) {
      this.wake.at(row.retryUntilTs);
      return false;
    }
    await hosts.refresh();
    const upTo = await store.maxStreamOrdering(db);
    const cursor = row.streamCursor;
    let target = row.catchUpTarget;
    if (row.retryCount > 0 && target === null && upTo > cursor) {
      // Back from an outage: only the newest events of each room up to here; the peer fetches gaps.
      target = upTo;
      await store.setCatchUpTarget(db, d, target);
    }

    const forwarded = await store.peekOutbox(db, d, 'pdus', MAX_PDUS_PER_TXN);
    const room = MAX_PDUS_PER_TXN - forwarded.length;
    const rooms = hosts.roomsOf(d, cursor);
    let scanned = cursor;
    let ownPdus: store.PduRow[] = [];
    let catchUpDone = false;
    if (room > 0) {
      if (target !== null && cursor < target) {
        ownPdus = await store.newestLocalEventsPerRoom(db, serverName, rooms, cursor, target, config.catchUpEventsPerRoom, room);
        scanned = ownPdus.length < room ? target : ownPdus[ownPdus.length - 1]!.streamOrdering;
        catchUpDone = scanned >= target;
      } else {
        ownPdus = await store.localEventsBetween(db, serverName, rooms, cursor, upTo, room);
        scanned = ownPdus.length < room ? Math.max(upTo, cursor) : ownPdus[ownPdus.length - 1]!.streamOrdering;
        catchUpDone = target !== null;
      }
      ownPdus = ownPdus.filter((p) => hosts.includes(p.roomId, d, p.streamOrdering));
    }

    let eduRows = await store.peekOutbox(db, d, 'edus', MAX_EDUS_PER_TXN);
    const stale = eduRows.filter((e) => e.eduType === 'm.typing' && now - e.createdTs > TYPING_MAX_AGE_MS).map((e) => e.id);
    if (stale.length > 0) {
      await store.deleteOutbox(db, stale);
      eduRows = eduRows.filter((e) => !stale.includes(e.id));
    }

    const forwardedJson = await store.getPduJson(db, forwarded.map((f) => f.eventId!));
    const pdus: JsonObject[] = [];
    for (const f of forwarded) {
      const json = forwardedJson.get(f.eventId!);
      if (json !== undefined) pdus.push(JSON.parse(json) as JsonObject);
    }
    for (const p of ownPdus) pdus.push(JSON.parse(p.json) as JsonObject);
    const edus = eduRows.map((e) => ({ edu_type: e.eduType!, content: JSON.parse(e.content!) as JsonObject }));
    const outboxIds = [...forwarded.map((f) => f.id), ...eduRows.map((e) => e.id)];

    if (pdus.length === 0 && edus.length === 0) {
      await store.deleteOutbox(db, outboxIds);
      if (scanned > cursor || catchUpDone) await store.advanceCursor(db, d, scanned, catchUpDone);
      return scanned > cursor;
    }

    const txnId = String(await store.nextTxnSeq(db, d));
    try {
      const answer = await this.ctx.client.request({
        destination: d,
        method: 'PUT',
        path: `/_matrix/federation/v1/send/${encodeURIComponent(txnId)}`,
        body: { origin: serverName, origin_server_ts: now, pdus, edus } as JsonObject,
      });
      this.logRejections(answer);
    } catch (err) {
      if (!(err instanceof FederationError)) throw err;
      if (isPermanent(err)) {
        // Retrying cannot help (the peer refuses this content, or we may not talk to it): drop it.
        this.ctx.logger.warn({ destination: d, txnId, err: err.message }, 'federation transaction refused; dropped');
      } else {
        const failures = row.retryCount + 1;
        const until = Date.now() + backoffMs(config, failures);
        await store.markFailed(db, d, failures, until);
        this.ctx.logger.info({ destination: d, failures, retryInMs: until - Date.now(), err: err.message }, 'federation transaction failed; backing off');
        this.wake.at(until);
        return false;
      }
    }
    await db.transaction(async (tx) => {
      await store.deleteOutbox(tx, outboxIds);
      await store.markSent(tx, d, scanned, catchUpDone, Date.now());
    });
    return true;
  }

  private logRejections(answer: JsonObject): void {
    const results = answer.pdus;
    if (typeof results !== 'object' || results === null) return;
    for (const [eventId, r] of Object.entries(results)) {
      if (typeof r === 'object' && r !== null && 'error' in r) this.ctx.logger.debug({ destination: this.destination, eventId, error: (r as { error: unknown }).error }, 'remote refused a PDU');
    }
  }
}

/** Failures a retry cannot fix: the content was refused, or the destination is not one we may reach. */
function isPermanent(err: FederationError): boolean {
  if (err.kind === 'denied' || err.kind === 'invalid_name' || err.kind === 'disabled') return true;
  return err.kind === 'remote' && (err.status === 400 || err.status === 413);
}
