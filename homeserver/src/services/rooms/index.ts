import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import type { Notifier } from '../../bus/notifier.js';
import type { RoomVersionId } from './pdu.js';
import { ServerSigningKey } from './signing_key.js';
import { TimelineService } from './timeline.js';
import { RoomCreator } from './create.js';
import { MembershipService } from './membership.js';
import { RoomReader } from './reader.js';
import { RelationsReader } from './relations_reader.js';
import { DirectoryService } from './directory.js';
import { SyncService } from '../sync/sync.js';

export interface RoomServices {
  signingKey: ServerSigningKey;
  timeline: TimelineService;
  creator: RoomCreator;
  membership: MembershipService;
  reader: RoomReader;
  relations: RelationsReader;
  directory: DirectoryService;
  sync: SyncService;
}

export async function createRoomServices(deps: {
  db: Database;
  logger: Logger;
  notifier: Notifier;
  serverName: string;
  defaultRoomVersion: RoomVersionId;
  maxSyncTimeoutMs: number;
}): Promise<RoomServices> {
  const signingKey = await ServerSigningKey.load(deps.db, deps.serverName);
  const timeline = new TimelineService({ db: deps.db, signer: signingKey, notifier: deps.notifier, logger: deps.logger });
  const reader = new RoomReader({ db: deps.db });
  return {
    signingKey,
    timeline,
    creator: new RoomCreator({ timeline, serverName: deps.serverName, defaultRoomVersion: deps.defaultRoomVersion }),
    membership: new MembershipService({ timeline, serverName: deps.serverName, db: deps.db }),
    reader,
    relations: new RelationsReader({ db: deps.db, reader }),
    directory: new DirectoryService({ db: deps.db, timeline, serverName: deps.serverName }),
    sync: new SyncService({ db: deps.db, notifier: deps.notifier, maxTimeoutMs: deps.maxSyncTimeoutMs }),
  };
}
