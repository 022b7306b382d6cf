import path from 'node:path';

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
  maxJsonBodyBytes: number;
  passwordMinLength: number;
  /** scrypt cost parameter N (OWASP: 2^17 with r=8, p=1). */
  scryptCost: number;
  /** Room version of new rooms unless createRoom names one. */
  defaultRoomVersion: '10' | '11';
  /** Longest a /sync long-poll waits, whatever `timeout` the client asks for. */
  syncMaxTimeoutMs: number;
  /** WebSocket sync (`/_hearth/client/v1/sync/ws`, protocol-spec/websocket-sync.md). */
  ws: WsConfig;
  /** The media repository (content_repo.md). */
  media: MediaConfig;
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

export class ConfigError extends Error {
  constructor(readonly setting: string, message: string) {
    super(`${setting}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: string, dflt: number, min: number, max: number): number {
  const v = str(env, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new ConfigError(name, `must be a whole number, got '${v}'`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, dflt: boolean): boolean {
  const v = str(env, name);
  if (v === undefined) return dflt;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(name, `must be true or false, got '${v}'`);
}

function rate(env: Env, name: string, dflt: RateLimitRule): RateLimitRule {
  const v = str(env, name);
  if (v === undefined) return dflt;
  const m = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(v);
  if (!m || Number(m[1]) <= 0 || Number(m[2]) < 1) {
    throw new ConfigError(name, `must be PER_SECOND/BURST, e.g. 0.17/3, got '${v}'`);
  }
  return { perSecond: Number(m[1]), burst: Number(m[2]) };
}

// Server names per the spec's grammar: a DNS name or IP literal, optional port.
export const SERVER_NAME_RE = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::\d{1,5})?$/;

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
  if (defaultRoomVersion !== '10' && defaultRoomVersion !== '11') {
    throw new ConfigError('HEARTH_DEFAULT_ROOM_VERSION', `must be 10 or 11, got '${defaultRoomVersion}'`);
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
    media: {
      maxUploadBytes: int(env, 'HEARTH_MEDIA_MAX_UPLOAD_BYTES', 52_428_800, 1, 10 * 1024 * 1024 * 1024),
      legacyUnauthenticated: bool(env, 'HEARTH_MEDIA_LEGACY_UNAUTHENTICATED', false),
      unusedExpiryMs: int(env, 'HEARTH_MEDIA_UNUSED_EXPIRY_MS', 24 * 3600_000, 1000, 7 * 24 * 3600_000),
      maxPendingUploads: int(env, 'HEARTH_MEDIA_MAX_PENDING_UPLOADS', 10, 1, 10_000),
    },
    rateLimits: {
      login: rate(env, 'HEARTH_RATELIMIT_LOGIN', { perSecond: 0.17, burst: 5 }),
      register: rate(env, 'HEARTH_RATELIMIT_REGISTER', { perSecond: 0.17, burst: 5 }),
      requestToken: rate(env, 'HEARTH_RATELIMIT_REQUEST_TOKEN', { perSecond: 0.05, burst: 5 }),
      client: rate(env, 'HEARTH_RATELIMIT_CLIENT', { perSecond: 10, burst: 50 }),
      mediaUpload: rate(env, 'HEARTH_RATELIMIT_MEDIA_UPLOAD', { perSecond: 1, burst: 20 }),
    },
  };
}
