// SFU settings from HEARTH_SFU_* environment variables (README's settings table, sfu/README.md).
// A bad or missing setting throws ConfigError naming it; main.ts prints it and exits.
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { ConfigError, bool, int, str, type Env } from '@hearth/env-config';

export interface SfuLimits {
  /** Participants (devices) in one call; the next join gets `call_full`. */
  maxParticipantsPerCall: number;
  /** Producers one participant may hold at once (microphone, camera, screen, screen audio). */
  maxProducersPerParticipant: number;
  /** Consumers one participant may hold at once. */
  maxConsumersPerParticipant: number;
  /** Largest WebSocket frame accepted from a client; larger frames close the socket (1009). */
  maxMessageBytes: number;
  /** Time a new socket has to `join` before it is closed. */
  joinTimeoutMs: number;
}

export interface SfuConfig {
  /** HTTP + WebSocket listener. */
  bindHost: string;
  port: number;
  /** Address the RTC sockets (UDP and TCP) bind to. */
  rtcListenIp: string;
  /** Address put in ICE candidates; unset: rtcListenIp (which must then not be 0.0.0.0 / ::). */
  announcedIp?: string;
  rtcMinPort: number;
  rtcMaxPort: number;
  enableUdp: boolean;
  enableTcp: boolean;
  /** mediasoup workers (one process each); default: one per core. */
  workers: number;
  /** Verifies call tokens (/tmp/call-contract.md): the homeserver's JWKS and its server name. */
  jwksUrl: string;
  issuer: string;
  /** Interval of the active speaker observer. */
  activeSpeakerIntervalMs: number;
  /** WebSocket ping interval; a socket that has not answered by the next ping is dropped. */
  pingIntervalMs: number;
  /** Bitrate the SFU starts sending to each receiver with, before its estimator has measured. */
  initialOutgoingBitrate: number;
  limits: SfuLimits;
  logLevel: string;
}

export { ConfigError };

function ip(env: Env, name: string, dflt: string | undefined): string | undefined {
  const v = str(env, name) ?? dflt;
  if (v !== undefined && isIP(v) === 0) throw new ConfigError(name, `must be an IPv4 or IPv6 address, got '${v}'`);
  return v;
}

function httpUrl(env: Env, name: string): string {
  const v = str(env, name);
  if (!v) throw new ConfigError(name, 'is required (the homeserver\'s /_hearth/call/v1/jwks.json URL)');
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(name, `'${v}' is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(name, `must be an http(s) URL, got '${v}'`);
  return u.href;
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export function loadSfuConfig(env: Env = process.env): SfuConfig {
  const rtcListenIp = ip(env, 'HEARTH_SFU_RTC_LISTEN_IP', '127.0.0.1')!;
  const announcedIp = ip(env, 'HEARTH_SFU_ANNOUNCED_IP', undefined);
  if (!announcedIp && (rtcListenIp === '0.0.0.0' || rtcListenIp === '::')) {
    throw new ConfigError('HEARTH_SFU_ANNOUNCED_IP', `is required when HEARTH_SFU_RTC_LISTEN_IP is ${rtcListenIp} (clients need a real address)`);
  }
  const rtcMinPort = int(env, 'HEARTH_SFU_RTC_MIN_PORT', 40000, 1024, 65535);
  const rtcMaxPort = int(env, 'HEARTH_SFU_RTC_MAX_PORT', 49999, 1024, 65535);
  if (rtcMaxPort < rtcMinPort) throw new ConfigError('HEARTH_SFU_RTC_MAX_PORT', `must not be below HEARTH_SFU_RTC_MIN_PORT (${rtcMinPort})`);
  const enableUdp = bool(env, 'HEARTH_SFU_ENABLE_UDP', true);
  const enableTcp = bool(env, 'HEARTH_SFU_ENABLE_TCP', true);
  if (!enableUdp && !enableTcp) throw new ConfigError('HEARTH_SFU_ENABLE_TCP', 'and HEARTH_SFU_ENABLE_UDP cannot both be false');
  const jwksUrl = httpUrl(env, 'HEARTH_SFU_JWKS_URL');
  const issuer = str(env, 'HEARTH_SFU_ISSUER');
  if (!issuer) throw new ConfigError('HEARTH_SFU_ISSUER', "is required (the homeserver's server name, e.g. example.org)");
  const logLevel = str(env, 'HEARTH_SFU_LOG_LEVEL') ?? str(env, 'HEARTH_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError('HEARTH_SFU_LOG_LEVEL', `unknown level '${logLevel}'`);
  return {
    bindHost: str(env, 'HEARTH_SFU_BIND_HOST') ?? '127.0.0.1',
    port: int(env, 'HEARTH_SFU_PORT', 8010, 0, 65535),
    rtcListenIp,
    ...(announcedIp ? { announcedIp } : {}),
    rtcMinPort,
    rtcMaxPort,
    enableUdp,
    enableTcp,
    workers: int(env, 'HEARTH_SFU_WORKERS', availableParallelism(), 1, 256),
    jwksUrl,
    issuer,
    activeSpeakerIntervalMs: int(env, 'HEARTH_SFU_ACTIVE_SPEAKER_INTERVAL_MS', 300, 100, 10_000),
    pingIntervalMs: int(env, 'HEARTH_SFU_PING_INTERVAL_MS', 30_000, 1000, 3_600_000),
    initialOutgoingBitrate: int(env, 'HEARTH_SFU_INITIAL_OUTGOING_BITRATE', 1_000_000, 100_000, 100_000_000),
    limits: {
      maxParticipantsPerCall: int(env, 'HEARTH_SFU_MAX_PARTICIPANTS', 16, 1, 1000),
      maxProducersPerParticipant: int(env, 'HEARTH_SFU_MAX_PRODUCERS_PER_PARTICIPANT', 4, 1, 32),
      maxConsumersPerParticipant: int(env, 'HEARTH_SFU_MAX_CONSUMERS_PER_PARTICIPANT', 64, 1, 10_000),
      maxMessageBytes: int(env, 'HEARTH_SFU_MAX_MESSAGE_BYTES', 65_536, 1024, 16 * 1024 * 1024),
      joinTimeoutMs: int(env, 'HEARTH_SFU_JOIN_TIMEOUT_MS', 10_000, 100, 600_000),
    },
    logLevel,
  };
}
