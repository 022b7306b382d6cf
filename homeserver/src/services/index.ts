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
}

/** Everything the rules layer needs, wired explicitly: no service reaches for a global. */
export async function createServices(config: Config, logger: Logger, db: Database, bus: Bus): Promise<Services> {
  const tokens = await AccessTokens.load(db, config.serverName);
  const sessions = new SessionService({
    db,
    tokens,
    accessTokenLifetimeMs: config.accessTokenLifetimeMs,
    logger,
    // Position 0: no new stream data, only "re-check": waiting syncs and sockets of the user wake up.
    onLogout: (userId) => bus.notifier.notify({ position: 0, roomIds: [], userIds: [userId] }),
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
  const devices = new DeviceService({ db, sessions });
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
  return { accountData, tokens, sessions, uia, passwords, accounts, mailer, threepids, registrationTokens, devices, profiles, rooms, media, pushRules, search, reports };
}
