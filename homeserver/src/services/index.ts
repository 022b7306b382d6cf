import { AccountDataService } from './account_data.js';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import type { Database } from '../storage/db.js';
import type { Bus } from '../bus/index.js';
import { AccessTokens } from './auth/tokens.js';
import { SessionService } from './auth/sessions.js';
import { UiaService } from './auth/uia.js';
import { PasswordHasher } from './passwords.js';
import { AccountService } from './accounts.js';
import { ThreepidService } from './threepids.js';
import { Mailer } from './mailer.js';
import { RegistrationTokenService } from './registration_tokens.js';
import { DeviceService } from './devices.js';
import { ProfileService } from './profile.js';
import { createRoomServices, type RoomServices } from './rooms/index.js';
import { RoomUpgrader } from './rooms/upgrade.js';
import { HierarchyService } from './rooms/hierarchy.js';
import { OpenIdService } from './openid.js';
import { MediaService } from './media.js';
import { PushRuleService } from './push_rules.js';
import { createPushServices, type PushServices } from './push/index.js';
import { deletePushersOfDevices } from './push/pushers.js';
import { SearchService } from './search.js';
import { ReportService } from './reports.js';
import { PresenceService } from './presence.js';
import { TypingService } from './ephemeral/typing.js';
import { ReceiptService } from './ephemeral/receipts.js';
import { createCallServices, type CallServices } from './calls/index.js';
import { createE2eServices, type E2eServices } from './e2e/index.js';
import { KeyBackupService } from './e2e/key_backup.js';
import { createFederationServices, type FederationServices } from './federation/index.js';
import type { FederationDns } from './federation/resolver.js';
import { createFederationRoomServices, type FederationRoomServices } from './federation/rooms.js';
import { FederatedMembership } from './federation/remote_membership.js';
import { EduOutbox } from './federation/sender/outbox.js';
import { createFederationMessaging, type FederationMessaging } from './federation/sender/index.js';
import { RemoteMedia } from './federation/media.js';
import { IdentityClient } from './identity/client.js';
import { ThirdPartyInviteService } from './rooms/third_party_invites.js';
import { FederatedThirdPartyInvites } from './federation/third_party_invites.js';

export interface Services {
  tokens: AccessTokens;
  sessions: SessionService;
  uia: UiaService;
  passwords: PasswordHasher;
  accounts: AccountService;
  mailer: Mailer;
  threepids: ThreepidService;
  registrationTokens: RegistrationTokenService;
  devices: DeviceService;
  profiles: ProfileService;
  rooms: RoomServices;
  media: MediaService;
  pushRules: PushRuleService;
  push: PushServices;
  search: SearchService;
  accountData: AccountDataService;
  reports: ReportService;
  /** Room upgrades (`POST /rooms/{roomId}/upgrade`). */
  roomUpgrades: RoomUpgrader;
  /** Space hierarchy (`/v1/rooms/{roomId}/hierarchy`). */
  hierarchy: HierarchyService;
  /** OpenID tokens for third parties (client `request_token`, federation `userinfo`). */
  openid: OpenIdService;
  presence: PresenceService;
  typing: TypingService;
  receipts: ReceiptService;
  calls: CallServices;
  e2e: E2eServices;
  keyBackup: KeyBackupService;
  federation: FederationServices;
  /** Federation's outgoing queue, EDUs and remote keys (services/federation/sender). */
  federationMessaging: FederationMessaging;
  /** Room events between servers: receipt checks, /send, joins, invites, backfill (services/federation/rooms.ts). */
  federationRooms: FederationRoomServices;
  /** Invites by email through an identity server (client /invite, createRoom's invite_3pid). */
  thirdPartyInvites: ThirdPartyInviteService;
  /** `/3pid/onbind` and `/exchange_third_party_invite` (services/federation/third_party_invites.ts). */
  federatedThirdPartyInvites: FederatedThirdPartyInvites;
}

/** What tests (and embedders) may swap at the boundaries we cannot run for real. */
export interface ServiceOverrides {
  /** DNS used by federation server-name resolution (default: node:dns). */
  federationDns?: FederationDns;
}

/** Everything the rules layer needs, wired explicitly: no service reaches for a global. */
export async function createServices(config: Config, logger: Logger, db: Database, bus: Bus, overrides: ServiceOverrides = {}): Promise<Services> {
  const tokens = await AccessTokens.load(db, config.serverName);
  const e2e = createE2eServices({ db, notifier: bus.notifier, serverName: config.serverName, config: config.e2e, logger });
  // Durable EDU queue for other servers (to-device messages to remote users go through it).
  const eduOutbox = new EduOutbox(config.serverName);
  if (config.federation.enabled) e2e.toDevice.remote = eduOutbox;
  const sessions = new SessionService({
    db,
    tokens,
    accessTokenLifetimeMs: config.accessTokenLifetimeMs,
    logger,
    // Position 0: no new stream data, only "re-check": waiting syncs and sockets of the user wake up.
    onLogout: (userId) => {
      bus.notifier.notify({ position: 0, roomIds: [], userIds: [userId] });
      e2e.devicesDeletedCommitted(userId).catch((err: unknown) => logger.warn({ err }, 'device-list notification failed'));
    },
    onDevicesDeleted: async (tx, userId, deviceIds) => {
      await e2e.devicesDeleted(tx, userId, deviceIds);
      await deletePushersOfDevices(tx, userId, deviceIds);
    },
  });
  const uia = new UiaService(db, config.uiaSessionLifetimeMs);
  const passwords = new PasswordHasher(config.scryptCost);
  const accounts = new AccountService({
    db,
    serverName: config.serverName,
    passwords,
    sessions,
    passwordMinLength: config.passwordMinLength,
  });
  const mailer = new Mailer(config.smtp, logger);
  const threepids = new ThreepidService({
    db,
    mailer,
    publicBaseUrl: config.publicBaseUrl,
    serverName: config.serverName,
    tokenLifetimeMs: config.emailTokenLifetimeMs,
    logger,
  });
  const registrationTokens = new RegistrationTokenService(db);
  const devices = new DeviceService({ db, sessions, onRenamed: (userId) => e2e.deviceLists.changed(userId) });
  const rooms = await createRoomServices({
    db,
    logger,
    notifier: bus.notifier,
    serverName: config.serverName,
    defaultRoomVersion: config.defaultRoomVersion,
    maxSyncTimeoutMs: config.syncMaxTimeoutMs,
  });
  const profiles = new ProfileService({ db, serverName: config.serverName, membership: rooms.membership, logger });
  const media = new MediaService({ db, logger, serverName: config.serverName, config: config.media, dataDir: config.dataDir });
  await media.init();
  const search = new SearchService({ db, reader: rooms.reader });
  const reports = new ReportService({ db });
  const pushRules = new PushRuleService(db);
  const push = createPushServices({ db, notifier: bus.notifier, logger, config: config.push, pushRules, timeline: rooms.timeline, sync: rooms.sync });
  const accountData = new AccountDataService({ db, notifier: bus.notifier });
  const presence = new PresenceService({
    db,
    notifier: bus.notifier,
    logger,
    config: config.presence,
    longPollWindowMs: config.syncMaxTimeoutMs,
    // A socket that misses a ping is dropped at the next one.
    socketWindowMs: 2 * config.ws.pingIntervalMs,
  });
  rooms.sync.addStream(presence);
  const typing = new TypingService({ db, notifier: bus.notifier, logger, config: config.typing });
  rooms.sync.addStream(typing);
  typing.start();
  const receipts = new ReceiptService({ db, notifier: bus.notifier, accountData });
  rooms.sync.addStream(receipts);
  presence.start();
  rooms.sync.addStream(e2e.toDevice.stream());
  rooms.sync.addStream(e2e.deviceLists.stream());
  const keyBackup = new KeyBackupService({ db, limits: config.keyBackup });
  const calls = await createCallServices(config, db);
  const federation = createFederationServices({ config: config.federation, db, signingKey: rooms.signingKey, logger, dns: overrides.federationDns });
  const federationMessaging = createFederationMessaging({ config, logger, db, notifier: bus.notifier, federation, outbox: eduOutbox, e2e, typing, receipts, presence });
  await federationMessaging.sender.start();
  const federationRooms = createFederationRoomServices({ db, logger, notifier: bus.notifier, serverName: config.serverName, config: config.federation, federation, signer: rooms.signingKey, appendHooks: rooms.timeline.hooks });
  if (config.federation.enabled) {
    rooms.membership.remote = new FederatedMembership({ db, serverName: config.serverName, queries: federationRooms.queries, joins: federationRooms.joins, invites: federationRooms.invites });
    rooms.reader.backfill = (roomId, limit) => federationRooms.backfill.backfill(roomId, limit);
    media.remote = new RemoteMedia({ db, client: federation.client, files: media.files, maxBytes: config.federation.sender.remoteMediaMaxBytes, logger });
  }
  const identity = new IdentityClient({ config: config.identity, logger });
  const thirdPartyInvites = new ThirdPartyInviteService({ db, serverName: config.serverName, timeline: rooms.timeline, membership: rooms.membership, identity, logger });
  rooms.creator.thirdParty = thirdPartyInvites;
  if (config.federation.enabled) thirdPartyInvites.remoteInvite = (sender, roomId, target, content) => federationRooms.invites.inviteRemote(sender, roomId, target, undefined, content);
  const federatedThirdPartyInvites = new FederatedThirdPartyInvites({ db, serverName: config.serverName, client: federation.client, invites: thirdPartyInvites, membership: rooms.membership, maxInvites: config.identity.onbindMaxInvites, logger });
  const roomUpgrades = new RoomUpgrader({ timeline: rooms.timeline, serverName: config.serverName });
  const hierarchy = new HierarchyService({ db, limits: config.hierarchy });
  if (config.federation.enabled) hierarchy.remote = federationRooms.hierarchy;
  const openid = new OpenIdService({ db, serverName: config.serverName, lifetimeMs: config.openidTokenLifetimeMs });
  return { thirdPartyInvites, federatedThirdPartyInvites, roomUpgrades, hierarchy, openid, push, federationRooms, federationMessaging, typing, receipts, federation, presence, keyBackup, e2e, calls, accountData, tokens, sessions, uia, passwords, accounts, mailer, threepids, registrationTokens, devices, profiles, rooms, media, pushRules, search, reports };
}
