/**
 * Queueing EDUs for other servers inside the caller's transaction (so a to-device message or a
 * device-list update is durable exactly when the local change is), then waking the sender once the
 * transaction committed. Created before the sender (the e2e services need it); the sender plugs
 * its wake-up in with `onQueued`.
 */
import type { Sql } from '../../../storage/db.js';
import * as store from '../../../storage/federation_queue.js';

export class EduOutbox {
  /** Set by the sender: wakes the destinations' queues (after the enqueuing transaction committed). */
  onQueued: (destinations: string[]) => void = () => {};

  constructor(readonly serverName: string) {}

  /** Queues the EDUs in `tx`; returns the destinations to pass to `queued` after the commit. */
  async queue(tx: Sql, edus: store.OutboxEdu[], now = Date.now()): Promise<string[]> {
    const own = edus.filter((e) => e.destination !== this.serverName);
    if (own.length === 0) return [];
    const destinations = [...new Set(own.map((e) => e.destination))];
    await store.ensureDestinations(tx, destinations, await store.maxStreamOrdering(tx));
    await store.enqueueEdus(tx, own, now);
    return destinations;
  }

  /** The enqueuing transaction committed: send. */
  queued(destinations: string[]): void {
    if (destinations.length > 0) this.onQueued(destinations);
  }
}
