import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, bool, int, str, type Env } from '@hearth/env-config';

export type RegistrationMode = 'open' | 'email' | 'token' | 'closed';

/** A token bucket: `perSecond` refill rate and `burst` capacity. */
export interface RateLimitRule {
  perSecond: number;
  burst: number;
}

export interface SmtpConfig {
  url: string;
  from: string;
}

export interface Config {
  serverName: string;
  bindHost: string;
  port: number;
  publicBaseUrl: string;
  dataDir: string;
  /** Unset: the embedded PGlite database under dataDir. */
  databaseUrl?: string;
  databasePoolSize: number;
  /** Unset: in-process implementations of the shared interfaces. */
  redisUrl?: string;
  registration: RegistrationMode;
  smtp?: SmtpConfig;
  logLevel: string;
  trustProxy: boolean;
  /** Lifetime of access tokens issued to clients that accept refresh tokens. */
  accessTokenLifetimeMs: number;
  /** How long an unused UIA session stays valid. */
  uiaSessionLifetimeMs: number;
  emailTokenLifetimeMs: number;
  /** OpenID tokens (`/user/{userId}/openid/request_token`): how long one identifies its user to a third party. */
  openidTokenLifetimeMs: number;
  /** `/v1/rooms/{roomId}/hierarchy`: rooms looked at per walk, deepest level, rooms per page. */
  hierarchy: { maxRooms: number; maxDepth: number; maxPage: number };
  maxJsonBodyBytes: number;
  passwordMinLength: number;
  /** scrypt cost parameter N (OWASP: 2^17 with r=8, p=1). */
  scryptCost: number;
  /** Room version of new rooms unless createRoom names one. */
  defaultRoomVersion: '10' | '11' | '12';
  /** Longest a /sync long-poll waits, whatever `timeout` the client asks for. */
  syncMaxTimeoutMs: number;
  /** WebSocket sync (`/_hearth/client/v1/sync/ws`, protocol-spec/websocket-sync.md). */
  ws: WsConfig;
  /** The media repository (content_repo.md). */
  media: MediaConfig;
  /** Presence (spec: "Presence"): idle and offline transitions. */
  presence: PresenceConfig;
  /** Typing notifications (spec: "Typing Notifications"). */
  typing: TypingConfig;
  /** Push notifications: unread counts, /notifications, pushers and the push gateway sender. */
  push: PushConfig;
  /** End-to-end encryption support: key uploads, send-to-device. */
  e2e: E2eConfig;
  /** Server-side room key backups (/room_keys). */
  keyBackup: KeyBackupConfig;
  /** Call tokens for the SFU and its discovery (protocol-spec/calls.md). */
  calls: CallsConfig;
  /** TURN credentials served by /voip/turnServer; unset: that endpoint answers `{}`. */
  turn?: TurnConfig;
  /** Server-server API (protocol-spec/federation.md). */
  federation: FederationConfig;
  /** Identity servers named by clients for third-party invites (services/identity). */
  identity: IdentityConfig;
  rateLimits: {
    login: RateLimitRule;
    register: RateLimitRule;
    requestToken: RateLimitRule;
    /** Everything else, per user (or per IP when unauthenticated). */
    client: RateLimitRule;
    /** Media uploads and `create`, per user. */
    mediaUpload: RateLimitRule;
  };
}

export interface MediaConfig {
  /** Largest upload accepted (M_TOO_LARGE above it); advertised as `m.upload.size`. */
  maxUploadBytes: number;
  /** Serve the deprecated unauthenticated `/_matrix/media/v3/download|thumbnail` (spec v1.11 freeze: off). */
  legacyUnauthenticated: boolean;
  /** How long a `create`d media id waits for its upload before it expires. */
  unusedExpiryMs: number;
  /** Created-but-not-uploaded media ids a user may hold at once (M_LIMIT_EXCEEDED above). */
  maxPendingUploads: number;
}

export interface CallsConfig {
  /** Lifetime of a call token (the SFU checks it on join only). */
  tokenTtlMs: number;
  /** ws(s) URL clients use to reach the SFU; unset: no `rtc_foci` in .well-known, `sfu_url: null`. */
  sfuPublicUrl?: string;
}

export interface TurnConfig {
  /** `turn:`/`turns:` URIs handed to clients. */
  uris: string[];
  /** coturn's `static-auth-secret` (REST API credentials). Never logged. */
  sharedSecret: string;
  /** Lifetime of the credentials handed out. */
  ttlSeconds: number;
}

export interface E2eConfig {
  /** One-time plus fallback keys one /keys/upload may carry. */
  maxKeysPerUpload: number;
  /** Users plus devices one /keys/query, or devices one /keys/claim, may name. */
  maxQueryTargets: number;
  /** Devices one /sendToDevice may reach (after `*` expands to a user's devices). */
  maxToDeviceMessages: number;
  /** Largest content of one to-device message (bytes of JSON). */
  maxToDeviceContentBytes: number;
  /** To-device messages per sync response (the spec recommends 100). */
  toDeviceBatch: number;
}

export interface PresenceConfig {
  /** Off: PUT is accepted and ignored, GET answers offline, /sync carries no presence. */
  enabled: boolean;
  /** An online user with no activity for this long becomes unavailable. */
  idleMs: number;
  /** A user who stopped syncing becomes offline this long after their last sync could have ended. */
  syncGraceMs: number;
  /** `currently_active` holds for this long after the last activity. */
  activeWindowMs: number;
  /** How often each process looks for users due for a transition. */
  sweepIntervalMs: number;
  /** Longest `status_msg` accepted (characters). */
  maxStatusMsgLength: number;
}

export interface PushConfig {
  /** First retry delay after a push gateway failed; doubles per failure up to retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** A notification still failing after this long is skipped (the pusher goes on with the next). */
  giveUpAfterMs: number;
  /** Deadline of one request to a push gateway. */
  requestTimeoutMs: number;
  /** How long a process's claim on a pusher lasts unless renewed (renewed every third of it). */
  leaseMs: number;
  /** Allow gateways at loopback/private/link-local addresses (off: such URLs are refused when sending). */
  allowPrivateAddresses: boolean;
  maxPushersPerUser: number;
  /** Push actions (what /notifications lists) older than this are deleted. */
  actionsRetentionMs: number;
  /** Users whose compiled push rules each process keeps. */
  ruleCacheUsers: number;
  /** Rooms whose joined local members (and member count) each process keeps for push evaluation. */
  memberCacheRooms: number;
  /** Largest `limit` of GET /notifications. */
  notificationsMaxLimit: number;
}

export interface TypingConfig {
  /** Longest typing notice honoured (a longer `timeout` is cut to this; Synapse: 2 minutes). */
  maxTimeoutMs: number;
  /** A typing notice without `timeout` lasts this long. */
  defaultTimeoutMs: number;
  /** How often each process stops notices whose expiry timer died with another process. */
  sweepIntervalMs: number;
}

export interface KeyBackupConfig {
  /** Keys one PUT /room_keys/keys... may carry (M_TOO_LARGE above). */
  maxKeysPerRequest: number;
  /** Largest `session_data` of one backed-up key (bytes of JSON). */
  maxSessionDataBytes: number;
  /** Largest `auth_data` of a backup version (bytes of JSON). */
  maxAuthDataBytes: number;
}

export interface WsConfig {
  /** A new socket must send its auth frame within this time (else close 4001). */
  authTimeoutMs: number;
  /** Sync batches sent and not yet acknowledged, at most. */
  maxUnacked: number;
  /** No batch is computed while more than this many bytes wait in the socket's send buffer. */
  maxBufferedBytes: number;
  /** Ping interval; a socket that has not answered the previous ping by the next one is dropped. */
  pingIntervalMs: number;
  /** Largest client frame accepted (the auth frame may carry an inline filter). */
  maxClientFrameBytes: number;
}

/** A notary we ask for other servers' keys; its own keys are pinned here or fetched directly. */
export interface TrustedKeyServer {
  serverName: string;
  /** key id → unpadded base64 public key; empty: fetch the notary's keys from the notary itself. */
  verifyKeys: Record<string, string>;
}

export interface FederationConfig {
  /** Serve and use the server-server API; off: its endpoints answer 404 and nothing is sent. */
  enabled: boolean;
  /** A dedicated federation listener (federation endpoints only); unset: none (the main port serves them). */
  port?: number;
  bindHost: string;
  /** HTTPS on the dedicated listener; unset: plain HTTP behind a TLS proxy. */
  tls?: { certFile: string; keyFile: string };
  /** Extra CA bundle (PEM) trusted for outgoing requests, besides the system CAs. */
  caFile?: string;
  /** Skip certificate verification of outgoing requests (tests only; warned about at start). */
  tlsInsecure: boolean;
  /** Allow outgoing connections to private, loopback, link-local… addresses. */
  allowPrivateAddresses: boolean;
  /** Globs over server hostnames; empty allowlist: every server not denied. */
  domainAllowlist: string[];
  domainDenylist: string[];
  requestTimeoutMs: number;
  maxResponseBytes: number;
  /** How far ahead our published keys' `valid_until_ts` lies. */
  keyValidityMs: number;
  /** How long another server's stored key is reused in memory before `server_keys` is read again. */
  keyCacheMs: number;
  trustedKeyServers: TrustedKeyServer[];
  /** Authenticated requests one origin may have in flight (more: 429). */
  maxConcurrentPerOrigin: number;
  /** Servers one notary query (`POST /_matrix/key/v2/query`) may name. */
  notaryMaxServers: number;
  /** `m.server` served at `/.well-known/matrix/server`; unset: that path answers 404. */
  wellKnownServer?: string;
  /** The outgoing transaction queue and remote E2EE/media look-ups (services/federation/sender). */
  sender: FederationSenderConfig;
  /** Room events between servers (services/federation/event_handler.ts, backfill.ts). */
  rooms: {
    missingEvents: number;
    missingEventsRounds: number;
    maxFetchedState: number;
    backfill: number;
    /** Space hierarchy of rooms we are not in: how long another server's `/hierarchy` answer is kept, how many are kept, how many requests one client request may make. */
    hierarchyCacheMs: number;
    hierarchyCacheEntries: number;
    hierarchyMaxRequests: number;
    /** Serving `/hierarchy`: most children of the space looked at. */
    hierarchyMaxChildren: number;
    /** `timestamp_to_event` with a gap in our history: most other servers asked per client request. */
    timestampMaxServers: number;
  };
}

export interface FederationSenderConfig {
  /** First back-off after a failed transaction; doubles per failure (with ±50% jitter) up to `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** After an outage, only this many of the newest events per room are sent (the peer fetches gaps). */
  catchUpEventsPerRoom: number;
  /** How long one process holds a destination's send lease (renewed per transaction). */
  leaseMs: number;
  /** Deadline of a /user/keys/query, /user/keys/claim or /user/devices request to another server. */
  remoteKeysTimeoutMs: number;
  /** Largest remote media file fetched and cached. */
  remoteMediaMaxBytes: number;
}

export interface IdentityConfig {
  /** Deadline of one request to an identity server (or a key_validity_url). */
  requestTimeoutMs: number;
  /** Largest identity server answer read. */
  maxResponseBytes: number;
  /** Allow identity servers at loopback/private/link-local… addresses (checked on the address connected to). */
  allowPrivateAddresses: boolean;
  /** Globs over identity server names clients may use; empty: any. */
  serverAllowlist: string[];
  /** Extra CA bundle (PEM) trusted for identity servers, besides the system CAs. */
  caFile?: string;
  /** Pending invites one `/3pid/onbind` may carry (more: 400). */
  onbindMaxInvites: number;
}

function identityConfig(env: Env): IdentityConfig {
  return {
    requestTimeoutMs: int(env, 'HEARTH_IDENTITY_REQUEST_TIMEOUT_MS', 10_000, 100, 300_000),
    maxResponseBytes: int(env, 'HEARTH_IDENTITY_MAX_RESPONSE_BYTES', 65_536, 1024, 16 * 1024 * 1024),
    allowPrivateAddresses: bool(env, 'HEARTH_IDENTITY_ALLOW_PRIVATE_ADDRESSES', false),
    serverAllowlist: globList(env, 'HEARTH_IDENTITY_SERVER_ALLOWLIST'),
    caFile: fileSetting(env, 'HEARTH_IDENTITY_CA_FILE'),
    onbindMaxInvites: int(env, 'HEARTH_IDENTITY_ONBIND_MAX_INVITES', 100, 1, 10_000),
  };
}

export { ConfigError };

function rate(env: Env, name: string, dflt: RateLimitRule): RateLimitRule {
  const v = str(env, name);
  if (v === undefined) return dflt;
  const m = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(v);
  if (!m || Number(m[1]) <= 0 || Number(m[2]) < 1) {
    throw new ConfigError(name, `must be PER_SECOND/BURST, e.g. 0.17/3, got '${v}'`);
  }
  return { perSecond: Number(m[1]), burst: Number(m[2]) };
}

function wsUrl(env: Env, name: string): string | undefined {
  const v = str(env, name);
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(name, `'${v}' is not a URL`);
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new ConfigError(name, `must be a ws:// or wss:// URL, got '${v}'`);
  return v;
}

/** TURN is configured by its URIs and shared secret together; one without the other is a mistake. */
function turnConfig(env: Env): TurnConfig | undefined {
  const urisRaw = str(env, 'HEARTH_TURN_URIS');
  const sharedSecret = str(env, 'HEARTH_TURN_SHARED_SECRET');
  if (!urisRaw && !sharedSecret) return undefined;
  if (!urisRaw) throw new ConfigError('HEARTH_TURN_URIS', 'is required when HEARTH_TURN_SHARED_SECRET is set');
  if (!sharedSecret) throw new ConfigError('HEARTH_TURN_SHARED_SECRET', 'is required when HEARTH_TURN_URIS is set');
  const uris = urisRaw.split(',').map((u) => u.trim()).filter(Boolean);
  // RFC 7065 syntax, loosely: scheme, host, optional port and ?transport=udp|tcp.
  const bad = uris.find((u) => !/^turns?:[^\s?]+(\?transport=(udp|tcp))?$/.test(u));
  if (bad !== undefined || uris.length === 0) throw new ConfigError('HEARTH_TURN_URIS', `must be comma-separated turn: or turns: URIs, got '${bad ?? urisRaw}'`);
  return { uris, sharedSecret, ttlSeconds: int(env, 'HEARTH_TURN_TTL_SECONDS', 86_400, 60, 7 * 86_400) };
}

// Server names per the spec's grammar: a DNS name or IP literal, optional port.
export const SERVER_NAME_RE = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::\d{1,5})?$/;

function fileSetting(env: Env, name: string): string | undefined {
  const v = str(env, name);
  if (v !== undefined && !fs.existsSync(v)) throw new ConfigError(name, `file '${v}' does not exist`);
  return v;
}

/** Comma-separated globs over server hostnames (`*` matches any run of characters, dots included). */
function globList(env: Env, name: string): string[] {
  const v = str(env, name);
  if (v === undefined) return [];
  const globs = v.split(',').map((g) => g.trim().toLowerCase()).filter(Boolean);
  const bad = globs.find((g) => !/^[a-z0-9.*:[\]-]+$/.test(g));
  if (bad !== undefined) throw new ConfigError(name, `'${bad}' is not a server name glob`);
  return globs;
}

/** `name` or `name ed25519:<version> <base64 key>` entries, comma-separated. */
function trustedKeyServers(env: Env): TrustedKeyServer[] {
  const name = 'HEARTH_FEDERATION_TRUSTED_KEY_SERVERS';
  const v = str(env, name);
  if (v === undefined) return [];
  return v.split(',').map((entry) => entry.trim()).filter(Boolean).map((entry) => {
    const parts = entry.split(/\s+/);
    const serverName = parts[0]!;
    if (!SERVER_NAME_RE.test(serverName)) throw new ConfigError(name, `'${serverName}' is not a server name`);
    if (parts.length === 1) return { serverName, verifyKeys: {} };
    if (parts.length !== 3 || !/^ed25519:[A-Za-z0-9_]+$/.test(parts[1]!) || !/^[A-Za-z0-9+/]{43}=?$/.test(parts[2]!)) {
      throw new ConfigError(name, `'${entry}' must be 'server_name' or 'server_name ed25519:<version> <base64 key>'`);
    }
    return { serverName, verifyKeys: { [parts[1]!]: parts[2]!.replace(/=$/, '') } };
  });
}

function federationConfig(env: Env, bindHost: string): FederationConfig {
  const certFile = fileSetting(env, 'HEARTH_FEDERATION_TLS_CERT_FILE');
  const keyFile = fileSetting(env, 'HEARTH_FEDERATION_TLS_KEY_FILE');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(certFile ? 'HEARTH_FEDERATION_TLS_KEY_FILE' : 'HEARTH_FEDERATION_TLS_CERT_FILE', 'the TLS certificate and key files go together');
  }
  const portRaw = str(env, 'HEARTH_FEDERATION_PORT');
  const wellKnownServer = str(env, 'HEARTH_FEDERATION_WELL_KNOWN_SERVER');
  if (wellKnownServer !== undefined && !SERVER_NAME_RE.test(wellKnownServer)) {
    throw new ConfigError('HEARTH_FEDERATION_WELL_KNOWN_SERVER', `'${wellKnownServer}' is not a server name (host[:port])`);
  }
  return {
    enabled: bool(env, 'HEARTH_FEDERATION_ENABLED', false),
    port: portRaw === undefined ? undefined : int(env, 'HEARTH_FEDERATION_PORT', 8448, 0, 65535),
    bindHost: str(env, 'HEARTH_FEDERATION_BIND_HOST') ?? bindHost,
    tls: certFile && keyFile ? { certFile, keyFile } : undefined,
    caFile: fileSetting(env, 'HEARTH_FEDERATION_CA_FILE'),
    tlsInsecure: bool(env, 'HEARTH_FEDERATION_TLS_INSECURE', false),
    allowPrivateAddresses: bool(env, 'HEARTH_FEDERATION_ALLOW_PRIVATE_ADDRESSES', false),
    domainAllowlist: globList(env, 'HEARTH_FEDERATION_DOMAIN_ALLOWLIST'),
    domainDenylist: globList(env, 'HEARTH_FEDERATION_DOMAIN_DENYLIST'),
    requestTimeoutMs: int(env, 'HEARTH_FEDERATION_REQUEST_TIMEOUT_MS', 60_000, 100, 600_000),
    maxResponseBytes: int(env, 'HEARTH_FEDERATION_MAX_RESPONSE_BYTES', 50 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    keyValidityMs: int(env, 'HEARTH_FEDERATION_KEY_VALIDITY_MS', 24 * 3600_000, 3600_000, 7 * 24 * 3600_000),
    keyCacheMs: int(env, 'HEARTH_FEDERATION_KEY_CACHE_MS', 60_000, 0, 3600_000),
    trustedKeyServers: trustedKeyServers(env),
    maxConcurrentPerOrigin: int(env, 'HEARTH_FEDERATION_MAX_CONCURRENT_PER_ORIGIN', 10, 1, 10_000),
    notaryMaxServers: int(env, 'HEARTH_FEDERATION_NOTARY_MAX_SERVERS', 100, 1, 10_000),
    wellKnownServer,
    sender: {
      retryBaseMs: int(env, 'HEARTH_FEDERATION_RETRY_BASE_MS', 10_000, 10, 24 * 3600_000),
      retryMaxMs: int(env, 'HEARTH_FEDERATION_RETRY_MAX_MS', 3600_000, 10, 7 * 24 * 3600_000),
      catchUpEventsPerRoom: int(env, 'HEARTH_FEDERATION_CATCHUP_EVENTS_PER_ROOM', 20, 1, 1000),
      leaseMs: int(env, 'HEARTH_FEDERATION_SEND_LEASE_MS', 60_000, 1000, 3600_000),
      remoteKeysTimeoutMs: int(env, 'HEARTH_FEDERATION_REMOTE_KEYS_TIMEOUT_MS', 10_000, 100, 600_000),
      remoteMediaMaxBytes: int(env, 'HEARTH_FEDERATION_REMOTE_MEDIA_MAX_BYTES', 52_428_800, 1, 10 * 1024 * 1024 * 1024),
    },
    rooms: {
      missingEvents: int(env, 'HEARTH_FEDERATION_MISSING_EVENTS_LIMIT', 20, 1, 100),
      missingEventsRounds: int(env, 'HEARTH_FEDERATION_MISSING_EVENTS_ROUNDS', 10, 1, 1000),
      maxFetchedState: int(env, 'HEARTH_FEDERATION_MAX_FETCHED_STATE', 20_000, 10, 1_000_000),
      backfill: int(env, 'HEARTH_FEDERATION_BACKFILL_LIMIT', 100, 1, 1000),
      hierarchyCacheMs: int(env, 'HEARTH_FEDERATION_HIERARCHY_CACHE_MS', 5 * 60_000, 0, 24 * 3600_000),
      hierarchyCacheEntries: int(env, 'HEARTH_FEDERATION_HIERARCHY_CACHE_ENTRIES', 1000, 1, 1_000_000),
      hierarchyMaxRequests: int(env, 'HEARTH_FEDERATION_HIERARCHY_MAX_REQUESTS', 10, 0, 1000),
      hierarchyMaxChildren: int(env, 'HEARTH_FEDERATION_HIERARCHY_MAX_CHILDREN', 100, 1, 10_000),
      timestampMaxServers: int(env, 'HEARTH_FEDERATION_TIMESTAMP_MAX_SERVERS', 3, 0, 100),
    },
  };
}

export function loadConfig(env: Env = process.env): Config {
  const serverName = str(env, 'HEARTH_SERVER_NAME');
  if (!serverName) throw new ConfigError('HEARTH_SERVER_NAME', 'is required (e.g. example.org or localhost:8008)');
  if (!SERVER_NAME_RE.test(serverName)) {
    throw new ConfigError('HEARTH_SERVER_NAME', `'${serverName}' is not a valid Matrix server name`);
  }
  const port = int(env, 'HEARTH_PORT', 8008, 0, 65535);
  const publicBaseUrlRaw = str(env, 'HEARTH_PUBLIC_BASEURL') ?? `http://localhost:${port}/`;
  let publicBaseUrl: string;
  try {
    const u = new URL(publicBaseUrlRaw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    publicBaseUrl = u.toString().replace(/\/+$/, '') + '/';
  } catch {
    throw new ConfigError('HEARTH_PUBLIC_BASEURL', `'${publicBaseUrlRaw}' is not an http(s) URL`);
  }
  const dataDir = path.resolve(str(env, 'HEARTH_DATA_DIR') ?? '.data');
  const databaseUrl = str(env, 'HEARTH_DATABASE_URL');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('HEARTH_DATABASE_URL', 'must be a postgres:// URL');
  }
  const redisUrl = str(env, 'HEARTH_REDIS_URL');
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('HEARTH_REDIS_URL', 'must be a redis:// or rediss:// URL');
  }
  const registration = (str(env, 'HEARTH_REGISTRATION') ?? 'closed') as RegistrationMode;
  if (!['open', 'email', 'token', 'closed'].includes(registration)) {
    throw new ConfigError('HEARTH_REGISTRATION', `must be open, email, token or closed, got '${registration}'`);
  }
  const smtpUrl = str(env, 'HEARTH_SMTP_URL');
  if (smtpUrl && !/^smtps?:\/\//.test(smtpUrl)) {
    throw new ConfigError('HEARTH_SMTP_URL', 'must be an smtp:// or smtps:// URL');
  }
  const smtpFrom = str(env, 'HEARTH_SMTP_FROM') ?? `Hearth <noreply@${serverName.replace(/:\d+$/, '')}>`;
  if (registration === 'email' && !smtpUrl) {
    throw new ConfigError('HEARTH_SMTP_URL', 'is required when HEARTH_REGISTRATION=email');
  }
  const logLevel = str(env, 'HEARTH_LOG_LEVEL') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('HEARTH_LOG_LEVEL', `unknown level '${logLevel}'`);
  }
  const scryptCost = int(env, 'HEARTH_SCRYPT_COST', 131072, 1024, 1 << 22);
  if ((scryptCost & (scryptCost - 1)) !== 0) throw new ConfigError('HEARTH_SCRYPT_COST', 'must be a power of two');

  const defaultRoomVersion = str(env, 'HEARTH_DEFAULT_ROOM_VERSION') ?? '11';
  if (defaultRoomVersion !== '10' && defaultRoomVersion !== '11' && defaultRoomVersion !== '12') {
    throw new ConfigError('HEARTH_DEFAULT_ROOM_VERSION', `must be 10, 11 or 12, got '${defaultRoomVersion}'`);
  }

  return {
    serverName,
    bindHost: str(env, 'HEARTH_BIND_HOST') ?? '127.0.0.1',
    port,
    publicBaseUrl,
    dataDir,
    databaseUrl,
    databasePoolSize: int(env, 'HEARTH_DATABASE_POOL_SIZE', 10, 1, 1000),
    redisUrl,
    registration,
    smtp: smtpUrl ? { url: smtpUrl, from: smtpFrom } : undefined,
    logLevel,
    trustProxy: bool(env, 'HEARTH_TRUST_PROXY', false),
    accessTokenLifetimeMs: int(env, 'HEARTH_ACCESS_TOKEN_LIFETIME_MS', 5 * 60_000, 1000, 7 * 24 * 3600_000),
    uiaSessionLifetimeMs: int(env, 'HEARTH_UIA_SESSION_LIFETIME_MS', 15 * 60_000, 1000, 24 * 3600_000),
    emailTokenLifetimeMs: int(env, 'HEARTH_EMAIL_TOKEN_LIFETIME_MS', 3600_000, 1000, 7 * 24 * 3600_000),
    openidTokenLifetimeMs: int(env, 'HEARTH_OPENID_TOKEN_LIFETIME_MS', 3600_000, 1000, 7 * 24 * 3600_000),
    hierarchy: {
      maxRooms: int(env, 'HEARTH_HIERARCHY_MAX_ROOMS', 1000, 1, 100_000),
      maxDepth: int(env, 'HEARTH_HIERARCHY_MAX_DEPTH', 10, 0, 100),
      maxPage: int(env, 'HEARTH_HIERARCHY_MAX_PAGE', 50, 1, 1000),
    },
    maxJsonBodyBytes: int(env, 'HEARTH_MAX_JSON_BODY_BYTES', 1024 * 1024, 1024, 100 * 1024 * 1024),
    passwordMinLength: int(env, 'HEARTH_PASSWORD_MIN_LENGTH', 8, 1, 512),
    scryptCost,
    defaultRoomVersion,
    syncMaxTimeoutMs: int(env, 'HEARTH_SYNC_MAX_TIMEOUT_MS', 60_000, 0, 600_000),
    ws: {
      authTimeoutMs: int(env, 'HEARTH_WS_AUTH_TIMEOUT_MS', 10_000, 10, 600_000),
      maxUnacked: int(env, 'HEARTH_WS_MAX_UNACKED', 4, 1, 1000),
      maxBufferedBytes: int(env, 'HEARTH_WS_MAX_BUFFERED_BYTES', 1024 * 1024, 1, 1024 * 1024 * 1024),
      pingIntervalMs: int(env, 'HEARTH_WS_PING_INTERVAL_MS', 30_000, 10, 3_600_000),
      maxClientFrameBytes: int(env, 'HEARTH_WS_MAX_CLIENT_FRAME_BYTES', 128 * 1024, 1024, 16 * 1024 * 1024),
    },
    presence: {
      enabled: bool(env, 'HEARTH_PRESENCE_ENABLED', true),
      idleMs: int(env, 'HEARTH_PRESENCE_IDLE_MS', 5 * 60_000, 10, 7 * 24 * 3600_000),
      syncGraceMs: int(env, 'HEARTH_PRESENCE_SYNC_GRACE_MS', 30_000, 10, 24 * 3600_000),
      activeWindowMs: int(env, 'HEARTH_PRESENCE_ACTIVE_WINDOW_MS', 60_000, 10, 24 * 3600_000),
      sweepIntervalMs: int(env, 'HEARTH_PRESENCE_SWEEP_INTERVAL_MS', 5_000, 10, 3600_000),
      maxStatusMsgLength: int(env, 'HEARTH_PRESENCE_MAX_STATUS_MSG_LENGTH', 1024, 0, 65_536),
    },
    typing: {
      maxTimeoutMs: int(env, 'HEARTH_TYPING_MAX_TIMEOUT_MS', 120_000, 1000, 3600_000),
      defaultTimeoutMs: int(env, 'HEARTH_TYPING_DEFAULT_TIMEOUT_MS', 30_000, 1000, 3600_000),
      sweepIntervalMs: int(env, 'HEARTH_TYPING_SWEEP_INTERVAL_MS', 10_000, 10, 3600_000),
    },
    push: {
      retryBaseMs: int(env, 'HEARTH_PUSH_RETRY_BASE_MS', 1000, 1, 3600_000),
      retryMaxMs: int(env, 'HEARTH_PUSH_RETRY_MAX_MS', 3600_000, 1, 24 * 3600_000),
      giveUpAfterMs: int(env, 'HEARTH_PUSH_GIVE_UP_AFTER_MS', 24 * 3600_000, 1000, 30 * 24 * 3600_000),
      requestTimeoutMs: int(env, 'HEARTH_PUSH_REQUEST_TIMEOUT_MS', 10_000, 100, 300_000),
      leaseMs: int(env, 'HEARTH_PUSH_LEASE_MS', 60_000, 1000, 3600_000),
      allowPrivateAddresses: bool(env, 'HEARTH_PUSH_ALLOW_PRIVATE_ADDRESSES', false),
      maxPushersPerUser: int(env, 'HEARTH_PUSH_MAX_PUSHERS_PER_USER', 100, 1, 10_000),
      actionsRetentionMs: int(env, 'HEARTH_PUSH_ACTIONS_RETENTION_MS', 30 * 24 * 3600_000, 60_000, 3650 * 24 * 3600_000),
      ruleCacheUsers: int(env, 'HEARTH_PUSH_RULE_CACHE_USERS', 10_000, 1, 10_000_000),
      memberCacheRooms: int(env, 'HEARTH_PUSH_MEMBER_CACHE_ROOMS', 10_000, 0, 10_000_000),
      notificationsMaxLimit: int(env, 'HEARTH_NOTIFICATIONS_MAX_LIMIT', 100, 1, 10_000),
    },
    media: {
      maxUploadBytes: int(env, 'HEARTH_MEDIA_MAX_UPLOAD_BYTES', 52_428_800, 1, 10 * 1024 * 1024 * 1024),
      legacyUnauthenticated: bool(env, 'HEARTH_MEDIA_LEGACY_UNAUTHENTICATED', false),
      unusedExpiryMs: int(env, 'HEARTH_MEDIA_UNUSED_EXPIRY_MS', 24 * 3600_000, 1000, 7 * 24 * 3600_000),
      maxPendingUploads: int(env, 'HEARTH_MEDIA_MAX_PENDING_UPLOADS', 10, 1, 10_000),
    },
    e2e: {
      maxKeysPerUpload: int(env, 'HEARTH_E2E_MAX_KEYS_PER_UPLOAD', 1000, 1, 100_000),
      maxQueryTargets: int(env, 'HEARTH_E2E_MAX_QUERY_TARGETS', 10_000, 1, 1_000_000),
      maxToDeviceMessages: int(env, 'HEARTH_TO_DEVICE_MAX_MESSAGES', 10_000, 1, 1_000_000),
      maxToDeviceContentBytes: int(env, 'HEARTH_TO_DEVICE_MAX_CONTENT_BYTES', 65_536, 256, 16 * 1024 * 1024),
      toDeviceBatch: int(env, 'HEARTH_TO_DEVICE_BATCH', 100, 1, 10_000),
    },
    keyBackup: {
      maxKeysPerRequest: int(env, 'HEARTH_KEY_BACKUP_MAX_KEYS_PER_REQUEST', 1000, 1, 100_000),
      maxSessionDataBytes: int(env, 'HEARTH_KEY_BACKUP_MAX_SESSION_DATA_BYTES', 16_384, 256, 1024 * 1024),
      maxAuthDataBytes: int(env, 'HEARTH_KEY_BACKUP_MAX_AUTH_DATA_BYTES', 16_384, 256, 1024 * 1024),
    },
    calls: {
      tokenTtlMs: int(env, 'HEARTH_CALL_TOKEN_TTL_MS', 300_000, 1000, 24 * 3600_000),
      sfuPublicUrl: wsUrl(env, 'HEARTH_SFU_PUBLIC_URL'),
    },
    turn: turnConfig(env),
    federation: federationConfig(env, str(env, 'HEARTH_BIND_HOST') ?? '127.0.0.1'),
    identity: identityConfig(env),
    rateLimits: {
      login: rate(env, 'HEARTH_RATELIMIT_LOGIN', { perSecond: 0.17, burst: 5 }),
      register: rate(env, 'HEARTH_RATELIMIT_REGISTER', { perSecond: 0.17, burst: 5 }),
      requestToken: rate(env, 'HEARTH_RATELIMIT_REQUEST_TOKEN', { perSecond: 0.05, burst: 5 }),
      client: rate(env, 'HEARTH_RATELIMIT_CLIENT', { perSecond: 10, burst: 50 }),
      mediaUpload: rate(env, 'HEARTH_RATELIMIT_MEDIA_UPLOAD', { perSecond: 1, burst: 20 }),
    },
  };
}
