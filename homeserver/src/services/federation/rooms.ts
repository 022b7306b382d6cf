/**
 * Room federation, wired (services/index.ts): the persistence of remote events, the receipt checks,
 * /send transactions, what other servers may read, joins/leaves/knocks, invites and backfill.
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import type { Notifier } from '../../bus/notifier.js';
import type { FederationConfig } from '../../core/config.js';
import type { ServerSigningKey } from '../rooms/signing_key.js';
import { FederatedEventStore } from '../rooms/federated_events.js';
import type { FederationServices } from './index.js';
import { FederationEventHandler } from './event_handler.js';
import { TransactionHandler } from './transactions.js';
import { FederationRoomReads } from './room_reads.js';
import { JoinService } from './joins.js';
import { InviteService } from './invites.js';
import { BackfillService } from './backfill.js';
import { RemoteQueries } from './remote_queries.js';
import { FederationHierarchy } from './hierarchy.js';
import { FederationTimestamps } from './timestamp_to_event.js';
import type { AppendHook } from '../rooms/timeline.js';

export interface FederationRoomServices {
  store: FederatedEventStore;
  events: FederationEventHandler;
  transactions: TransactionHandler;
  reads: FederationRoomReads;
  joins: JoinService;
  invites: InviteService;
  backfill: BackfillService;
  queries: RemoteQueries;
  /** Space hierarchy: federation `/hierarchy`, served and asked (hierarchy.ts). */
  hierarchy: FederationHierarchy;
  /** `timestamp_to_event`, served and asked (timestamp_to_event.ts). */
  timestamps: FederationTimestamps;
}

export function createFederationRoomServices(deps: {
  db: Database;
  logger: Logger;
  notifier: Notifier;
  serverName: string;
  config: FederationConfig;
  federation: FederationServices;
  signer: ServerSigningKey;
  /** TimelineService.hooks: remote events run them too (push evaluation). */
  appendHooks?: readonly AppendHook[];
}): FederationRoomServices {
  const { db, logger, serverName, federation } = deps;
  const limits = deps.config.rooms;
  const store = new FederatedEventStore({ db, notifier: deps.notifier, logger, appendHooks: deps.appendHooks });
  const events = new FederationEventHandler({ db, client: federation.client, keyRing: federation.keyRing, store, serverName, logger, limits });
  const outbox = () => federation.outbox;
  const reads = new FederationRoomReads({ db, serverName, maxBackfill: limits.backfill });
  const backfill = new BackfillService({ db, serverName, client: federation.client, events, logger, limit: limits.backfill });
  return {
    store,
    events,
    reads,
    transactions: new TransactionHandler({ db, events, edus: () => federation.edus, logger }),
    joins: new JoinService({ db, serverName, client: federation.client, events, reads, signer: deps.signer, outbox, logger }),
    invites: new InviteService({ db, serverName, client: federation.client, keyRing: federation.keyRing, events, signer: deps.signer, outbox, logger }),
    queries: new RemoteQueries({ client: federation.client }),
    backfill,
    hierarchy: new FederationHierarchy({
      db,
      serverName,
      client: federation.client,
      logger,
      limits: { cacheMs: limits.hierarchyCacheMs, cacheEntries: limits.hierarchyCacheEntries, maxRequests: limits.hierarchyMaxRequests, maxChildren: limits.hierarchyMaxChildren },
    }),
    timestamps: new FederationTimestamps({ db, serverName, client: federation.client, events, reads, backfill, logger, maxServers: limits.timestampMaxServers, backfillLimit: limits.backfill }),
  };
}
