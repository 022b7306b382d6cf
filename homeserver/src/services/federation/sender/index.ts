/**
 * The outgoing federation sender (spec: server-server API, "Transactions"): one durable queue per
 * destination (destination.ts), fed by the events table (our own events, per-destination cursor),
 * the outbox (forwarded remote events, EDUs) and the local EDU streams (edu_streams.ts). Woken by
 * the notifier: nothing polls; only back-off and lease timers wait.
 */
import { randomUUID } from 'node:crypto';
import type { Config, FederationConfig } from '../../../core/config.js';
import type { Logger } from '../../../core/logger.js';
import { parseUserId } from '../../../core/ids.js';
import type { Database } from '../../../storage/db.js';
import type { Notifier, StreamChange } from '../../../bus/notifier.js';
import * as store from '../../../storage/federation_queue.js';
import type { FederationClient } from '../client.js';
import type { FederationOutbox } from '../seams.js';
import { FederationDevices } from '../devices.js';
import { EduHandler } from '../edus.js';
import type { FederationServices } from '../index.js';
import type { E2eServices } from '../../e2e/index.js';
import type { TypingService } from '../../ephemeral/typing.js';
import type { ReceiptService } from '../../ephemeral/receipts.js';
import type { PresenceService } from '../../presence.js';
import { DestinationQueue, type SenderContext } from './destination.js';
import { EduStreams, type EduStreamName } from './edu_streams.js';
import type { EduOutbox } from './outbox.js';
import { RoomHosts } from './room_hosts.js';

export interface FederationSenderDeps {
  db: Database;
  notifier: Notifier;
  client: FederationClient;
  config: FederationConfig;
  serverName: string;
  outbox: EduOutbox;
  devices: FederationDevices;
  presenceEnabled: boolean;
  /** This process alone uses the database (embedded: the data dir is locked to one process). */
  ownsDatabase?: boolean;
  logger: Logger;
}

export class FederationSender implements FederationOutbox {
  readonly hosts: RoomHosts;
  private readonly ctx: SenderContext;
  private readonly queues = new Map<string, DestinationQueue>();
  private readonly edus: EduStreams;
  private unlisten?: () => void;
  private started = false;
  private closed = false;
  /** Newest events position whose rooms' destinations were woken. */
  private dispatched = 0;
  private dispatching?: Promise<void>;
  private dispatchAgain = false;

  constructor(private readonly deps: FederationSenderDeps) {
    this.hosts = new RoomHosts(deps.db, deps.serverName);
    this.ctx = {
      db: deps.db,
      client: deps.client,
      hosts: this.hosts,
      serverName: deps.serverName,
      config: deps.config.sender,
      owner: randomUUID(),
      // A lease outlives the longest request, so it cannot lapse while a transaction is in flight.
      leaseMs: Math.max(deps.config.sender.leaseMs, deps.config.requestTimeoutMs + 10_000),
      logger: deps.logger,
    };
    this.edus = new EduStreams({
      db: deps.db,
      serverName: deps.serverName,
      hosts: this.hosts,
      outbox: deps.outbox,
      devices: deps.devices,
      presenceEnabled: deps.presenceEnabled,
      logger: deps.logger,
    });
    deps.outbox.onQueued = (destinations) => {
      for (const d of destinations) this.queue(d).kick();
    };
  }

  /** Starts listening and resumes every destination that has something waiting (after a restart). */
  async start(): Promise<void> {
    if (!this.deps.config.enabled || this.started) return;
    this.started = true;
    // A kill -9 skips close(): its leases stay until they expire (a minute), stalling every queue.
    // With the database to ourselves, any lease found now is such a dead process's: take them back.
    if (this.deps.ownsDatabase) await store.clearLeases(this.deps.db);
    this.dispatched = await store.maxStreamOrdering(this.deps.db);
    await this.hosts.refresh();
    this.unlisten = this.deps.notifier.listen('all', (c) => this.onChange(c));
    await this.edus.start();
    for (const d of await store.allDestinations(this.deps.db)) this.queue(d).kick();
  }

  /** Graceful stop: no new transactions, waits for those in flight, gives the leases back. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unlisten?.();
    await this.dispatching;
    await this.edus.close();
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    if (this.started) await store.releaseAllLeases(this.deps.db, this.ctx.owner).catch(() => {});
  }

  /** FederationOutbox: a remote event we accepted as the resident server goes to the room's other servers. */
  async forward(roomId: string, eventId: string): Promise<void> {
    if (!this.deps.config.enabled) return;
    await this.hosts.refresh();
    const json = (await store.getPduJson(this.deps.db, [eventId])).get(eventId);
    if (json === undefined) throw new Error(`forward: unknown event ${eventId}`);
    const sender = (JSON.parse(json) as { sender?: unknown }).sender;
    const origin = typeof sender === 'string' ? parseUserId(sender)?.serverName : undefined;
    const destinations = this.hosts.current(roomId).filter((h) => h !== origin);
    if (destinations.length === 0) return;
    await this.deps.db.transaction(async (tx) => {
      await store.ensureDestinations(tx, destinations, await store.maxStreamOrdering(tx));
      await store.enqueuePdus(tx, destinations, eventId, Date.now());
    });
    for (const d of destinations) this.queue(d).kick();
  }

  /** FederationOutbox: events of ours were committed. */
  wake(): void {
    this.dispatch();
  }

  /** The queue of a destination (tests use it to look at its state). */
  queue(destination: string): DestinationQueue {
    let q = this.queues.get(destination);
    if (!q) this.queues.set(destination, (q = new DestinationQueue(this.ctx, destination)));
    return q;
  }

  private onChange(c: StreamChange): void {
    if (this.closed) return;
    if (c.position > 0 && !c.remoteOnly) this.dispatch(); // other servers' events: none of ours to send
    for (const name of Object.keys(c.streams ?? {})) {
      if (name === 'typing' || name === 'receipts' || name === 'presence' || name === 'deviceLists') this.edus.run(name as EduStreamName);
    }
  }

  /** Wakes the destinations of rooms that got events of ours since the last dispatch. */
  private dispatch(): void {
    if (this.closed || !this.started) return;
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    this.dispatching = (async () => {
      do {
        this.dispatchAgain = false;
        const { db, serverName } = this.deps;
        const upTo = await store.maxStreamOrdering(db);
        if (upTo <= this.dispatched) continue;
        await this.hosts.refresh();
        const firstBy = new Map<string, number>();
        for (const r of await store.roomsWithLocalEvents(db, serverName, this.dispatched, upTo)) {
          for (const h of this.hosts.at(r.roomId, r.first)) firstBy.set(h, Math.min(firstBy.get(h) ?? Infinity, r.first));
          // Servers that joined after that event but before the later ones.
          for (const h of this.hosts.current(r.roomId)) if (!firstBy.has(h)) firstBy.set(h, r.first);
        }
        this.dispatched = upTo;
        // A new destination starts just before the first event meant for it (not at the room's history).
        for (const [h, first] of firstBy) await store.ensureDestinations(db, [h], first - 1);
        for (const h of firstBy.keys()) this.queue(h).kick();
      } while (this.dispatchAgain && !this.closed);
    })()
      .catch((err: unknown) => this.deps.logger.warn({ err }, 'federation dispatch failed'))
      .finally(() => (this.dispatching = undefined));
  }
}

/** Everything of federation's messaging side, wired together (services/index.ts). */
export interface FederationMessaging {
  sender: FederationSender;
  edus: EduHandler;
  devices: FederationDevices;
  outbox: EduOutbox;
  close(): Promise<void>;
}

export function createFederationMessaging(deps: {
  config: Config;
  logger: Logger;
  db: Database;
  notifier: Notifier;
  federation: FederationServices;
  outbox: EduOutbox;
  e2e: E2eServices;
  typing: TypingService;
  receipts: ReceiptService;
  presence: PresenceService;
}): FederationMessaging {
  const { config, logger, db, notifier, federation, e2e } = deps;
  const devices = new FederationDevices({
    db,
    serverName: config.serverName,
    keys: e2e.keys,
    deviceLists: e2e.deviceLists,
    client: federation.client,
    config: config.federation.sender,
    logger,
  });
  // Remote users in /keys/query and /keys/claim go over federation (when it is on).
  if (config.federation.enabled) e2e.keys.remote = devices;
  const sender = new FederationSender({
    db,
    notifier,
    client: federation.client,
    config: config.federation,
    serverName: config.serverName,
    outbox: deps.outbox,
    devices,
    presenceEnabled: config.presence.enabled,
    ownsDatabase: !config.databaseUrl,
    logger,
  });
  const edus = new EduHandler({
    db,
    notifier,
    serverName: config.serverName,
    typing: deps.typing,
    receipts: deps.receipts,
    presence: deps.presence,
    devices,
    maxToDeviceContentBytes: config.e2e.maxToDeviceContentBytes,
    logger,
  });
  federation.outbox = sender;
  federation.edus = edus;
  return { sender, edus, devices, outbox: deps.outbox, close: () => sender.close() };
}
