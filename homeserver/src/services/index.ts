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
import { MediaService } from './media.js';
import { PushRuleService } from './push_rules.js';
import { SearchService } from './search.js';
import { ReportService } from './reports.js';
import { PresenceService } from './presence.js';
import { createCallServices, type CallServices } from './calls/index.js';
import { createE2eServices, type E2eServices } from './e2e/index.js';
import { KeyBackupService } from './e2e/key_backup.js';
import { createFederationServices, type FederationServices } from './federation/index.js';
import type { FederationDns } from './federation/resolver.js';

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
  search: SearchService;
  accountData: AccountDataService;
  reports: ReportService;
  presence: PresenceService;
  calls: CallServices;
  e2e: E2eServices;
  keyBackup: KeyBackupService;
  federation: FederationServices;
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
    onDevicesDeleted: (tx, userId, deviceIds) => e2e.devicesDeleted(tx, userId, deviceIds),
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
  presence.start();
  rooms.sync.addStream(e2e.toDevice.stream());
  rooms.sync.addStream(e2e.deviceLists.stream());
  const keyBackup = new KeyBackupService({ db, limits: config.keyBackup });
  const calls = await createCallServices(config, db);
  const federation = createFederationServices({ config: config.federation, db, signingKey: rooms.signingKey, logger, dns: overrides.federationDns });
  return { federation, presence, keyBackup, e2e, calls, accountData, tokens, sessions, uia, passwords, accounts, mailer, threepids, registrationTokens, devices, profiles, rooms, media, pushRules, search, reports };
}
