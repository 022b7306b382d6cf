/**
 * `PUT /send/{txnId}` (spec: server-server API "Transactions"): at most 50 PDUs and 100 EDUs; one
 * transaction per origin at a time (a second waits for the first); a transaction id the origin
 * already used gets the answer it got then (kept in `federation_txns`, written once the PDUs are
 * persisted, so a retry after a crash finds them stored and answers the same). PDUs get the outcome
 * handling them one by one gives — one bad PDU never fails the others — with linear runs of a room
 * persisted in one locked transaction each (pdu_runs.ts); EDUs go to the FederationEduHandler.
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { badJson } from '../../core/errors.js';
import type { JsonObject } from '../../core/canonical_json.js';
import * as fed from '../../storage/federated_events.js';
import type { FederationEventHandler } from './event_handler.js';
import type { Edu, FederationEduHandler } from './seams.js';
import { PduRuns } from './pdu_runs.js';

export const MAX_TXN_PDUS = 50;
export const MAX_TXN_EDUS = 100;
/** How long a transaction's answer is kept for retries. */
const TXN_RETENTION_MS = 24 * 3600_000;

export class TransactionHandler {
  private readonly running = new Map<string, Promise<unknown>>();
  private lastPrune = 0;
  private readonly runs: PduRuns;

  constructor(private readonly deps: { db: Database; events: FederationEventHandler; edus: () => FederationEduHandler; logger: Logger }) {
    this.runs = new PduRuns({ db: deps.db, handler: deps.events, logger: deps.logger });
  }

  async receive(origin: string, txnId: string, body: JsonObject): Promise<JsonObject> {
    const pdus = body.pdus ?? [];
    const edus = body.edus ?? [];
    if (!Array.isArray(pdus)) throw badJson("'pdus' must be an array");
    if (!Array.isArray(edus)) throw badJson("'edus' must be an array");
    if (pdus.length > MAX_TXN_PDUS) throw badJson(`At most ${MAX_TXN_PDUS} PDUs per transaction`);
    if (edus.length > MAX_TXN_EDUS) throw badJson(`At most ${MAX_TXN_EDUS} EDUs per transaction`);
    if (body.origin !== undefined && body.origin !== origin) throw badJson("'origin' is not the server that signed the request");
    // One transaction per origin at a time: the next waits for the one running.
    const before = this.running.get(origin) ?? Promise.resolve();
    const mine = before.catch(() => {}).then(() => this.process(origin, txnId, pdus, edus));
    this.running.set(origin, mine);
    try {
      return await mine;
    } finally {
      if (this.running.get(origin) === mine) this.running.delete(origin);
    }
  }

  private async process(origin: string, txnId: string, pdus: unknown[], edus: unknown[]): Promise<JsonObject> {
    const earlier = await fed.getTxnResponse(this.deps.db, origin, txnId);
    if (earlier !== undefined) return JSON.parse(earlier) as JsonObject;
    const results: Record<string, JsonObject> = {};
    for (const r of await this.runs.receiveAll(origin, pdus)) {
      if (r.eventId) results[r.eventId] = r.error !== undefined ? { error: r.error } : {};
    }
    const wellFormed = edus.filter((e): e is Edu => typeof e === 'object' && e !== null && typeof (e as Edu).edu_type === 'string' && typeof (e as Edu).content === 'object' && (e as Edu).content !== null);
    if (wellFormed.length > 0) {
      try {
        await this.deps.edus().receive(origin, wellFormed);
      } catch (err) {
        this.deps.logger.warn({ err, origin }, 'EDU handling failed');
      }
    }
    const response: JsonObject = { pdus: results };
    await fed.putTxnResponse(this.deps.db, origin, txnId, JSON.stringify(response));
    if (Date.now() - this.lastPrune > 3600_000) {
      this.lastPrune = Date.now();
      await fed.pruneTxns(this.deps.db, Date.now() - TXN_RETENTION_MS).catch(() => {});
    }
    return response;
  }
}
