import type { LoginResponse } from '@hearth/types';
import type { Database, Sql } from '../../storage/db.js';
import * as sessions from '../../storage/sessions.js';
import * as devices from '../../storage/devices.js';
import { newDeviceId, newOpaqueToken, randomString, sha256Hex } from '../../core/ids.js';
import { unknownToken } from '../../core/errors.js';
import type { AccessTokens } from './tokens.js';
import type { Logger } from '../../core/logger.js';

/** storage/devices.ts touchDevice writes at most this often too. */
const ACTIVITY_INTERVAL_MS = 60_000;
const MAX_RECORDED_SESSIONS = 50_000;

/** Who is making an authenticated request. */
export interface Requester {
  userId: string;
  deviceId: string;
  sessionId: string;
  isAdmin: boolean;
}

/** A new session's credentials, as /login and /register answer them. */
export type LoginResult = Omit<LoginResponse, 'home_server'>;

export interface SessionServiceDeps {
  db: Database;
  tokens: AccessTokens;
  accessTokenLifetimeMs: number;
  logger: Logger;
  /** Called after a logout commits, so live connections of the user re-check their sessions (WebSocket sync). */
  onLogout?: (userId: string) => void;
  /** Runs inside the transaction that deletes devices (their keys and to-device inbox go with them). */
  onDevicesDeleted?: (tx: Sql, userId: string, deviceIds: string[]) => Promise<void>;
}

/**
 * Logged-in sessions: one per device, carrying a JWT access token and, for clients
 * that opt in (spec v1.3), a rotating refresh token. Every check also consults the
 * database, so logout, password change and deactivation take effect at once.
 */
export class SessionService {
  /** When this process last recorded each session's activity, so most requests skip the write. */
  private readonly lastRecorded = new Map<string, { ts: number; ip: string }>();

  constructor(private readonly deps: SessionServiceDeps) {}

  /**
   * Records a device's `last_seen_ts`/`last_seen_ip` (the spec allows them to be minutes stale):
   * at most once a minute per session and IP, here and in SQL. Never throws: failures are logged.
   */
  async recordActivity(r: Requester, ip: string, now = Date.now()): Promise<void> {
    const prev = this.lastRecorded.get(r.sessionId);
    if (prev && prev.ip === ip && now - prev.ts < ACTIVITY_INTERVAL_MS) return;
    this.lastRecorded.delete(r.sessionId); // re-inserted last: the map is oldest-first
    this.lastRecorded.set(r.sessionId, { ts: now, ip });
    if (this.lastRecorded.size > MAX_RECORDED_SESSIONS) {
      this.lastRecorded.delete(this.lastRecorded.keys().next().value!);
    }
    try {
      await devices.touchDevice(this.deps.db, r.userId, r.deviceId, ip, now);
    } catch (err) {
      this.lastRecorded.delete(r.sessionId);
      this.deps.logger.warn({ err, user: r.userId, device: r.deviceId }, 'could not record device activity');
    }
  }

  /** POST /login: a new session in its own transaction. */
  createLogin(opts: { userId: string; deviceId?: string; displayName?: string | null; refreshable: boolean }) {
    return this.deps.db.transaction((tx) => this.create(tx, opts));
  }

  async logoutDevices(userId: string, deviceIds: string[]): Promise<void> {
    await this.deps.db.transaction((tx) => this.revokeDevices(tx, userId, deviceIds));
    this.revoked(userId);
  }

  async logoutAll(userId: string): Promise<void> {
    await this.deps.db.transaction((tx) => this.revokeAll(tx, userId, null));
    this.revoked(userId);
  }

  /** Callers of revokeDevices/revokeAll call this once their transaction has committed. */
  revoked(userId: string): void {
    this.deps.onLogout?.(userId);
  }

  /** Creates (or replaces) the session of a device, inside the caller's transaction. */
  async create(
    tx: Sql,
    opts: { userId: string; deviceId?: string; displayName?: string | null; refreshable: boolean },
  ): Promise<LoginResult> {
    const deviceId = opts.deviceId ?? newDeviceId();
    await devices.upsertDevice(tx, opts.userId, deviceId, opts.displayName ?? null);
    const sessionId = randomString(24);
    await sessions.insertSession(tx, { sessionId, userId: opts.userId, deviceId, refreshable: opts.refreshable });
    if (!opts.refreshable) {
      const access_token = await this.deps.tokens.issue(
        { userId: opts.userId, deviceId, sessionId, refreshId: 0 },
        null,
      );
      return { user_id: opts.userId, device_id: deviceId, access_token };
    }
    const pair = await this.newGeneration(tx, { userId: opts.userId, deviceId, sessionId }, null);
    return { user_id: opts.userId, device_id: deviceId, ...pair };
  }

  private async newGeneration(
    tx: Sql,
    s: { userId: string; deviceId: string; sessionId: string },
    confirmed: number | null,
  ): Promise<{ access_token: string; refresh_token: string; expires_in_ms: number }> {
    const refresh_token = newOpaqueToken('hearth_rt');
    const refreshId = await sessions.insertRefreshToken(tx, s.sessionId, sha256Hex(refresh_token));
    await sessions.setRefreshIds(tx, s.sessionId, refreshId, confirmed);
    const lifetime = this.deps.accessTokenLifetimeMs;
    const access_token = await this.deps.tokens.issue({ ...s, refreshId }, lifetime);
    return { access_token, refresh_token, expires_in_ms: lifetime };
  }

  /**
   * POST /refresh. The newest refresh token rotates normally. The one before it still works
   * while the new access token is unused (the client may have lost our answer): it replaces
   * the unused pair. Any older token is a reuse of a rotated-out token: the session is revoked.
   */
  async refresh(refreshToken: string): Promise<{ access_token: string; refresh_token: string; expires_in_ms: number }> {
    const outcome = await this.deps.db.transaction(async (tx) => {
      const found = await sessions.findRefreshToken(tx, sha256Hex(refreshToken));
      if (!found) return { kind: 'unknown' as const };
      const s = await sessions.getSession(tx, found.session_id, true);
      if (!s || s.deactivated) return { kind: 'unknown' as const };
      const id = Number(found.refresh_id);
      const latest = Number(s.latest_refresh_id);
      const confirmed = s.confirmed_refresh_id === null ? null : Number(s.confirmed_refresh_id);
      const who = { userId: s.user_id, deviceId: s.device_id, sessionId: s.session_id };
      if (id === latest) {
        // Whoever presents the newest token holds it: it becomes the fallback for a lost answer.
        return { kind: 'ok' as const, pair: await this.newGeneration(tx, who, id) };
      }
      if (id === confirmed) {
        await sessions.deleteRefreshToken(tx, latest); // the lost, never-used pair
        return { kind: 'ok' as const, pair: await this.newGeneration(tx, who, confirmed) };
      }
      await this.revokeDevices(tx, s.user_id, [s.device_id]);
      return { kind: 'reused' as const, userId: s.user_id, deviceId: s.device_id };
    });
    if (outcome.kind === 'ok') return outcome.pair;
    if (outcome.kind === 'reused') {
      this.revoked(outcome.userId);
      this.deps.logger.warn({ user: outcome.userId, device: outcome.deviceId }, 'refresh token reuse: session revoked');
    }
    throw unknownToken('Unknown refresh token', false);
  }

  /** Resolves an access token to its requester, or throws M_UNKNOWN_TOKEN. */
  async authenticate(accessToken: string): Promise<Requester> {
    const verified = await this.deps.tokens.verify(accessToken);
    if (!verified.ok) {
      throw unknownToken(verified.expired ? 'Access token has expired' : 'Unrecognised access token', verified.expired);
    }
    const { claims } = verified;
    const s = await sessions.getSession(this.deps.db, claims.sessionId);
    if (!s || s.deactivated || s.user_id !== claims.userId) throw unknownToken('Access token has been revoked', false);
    if (s.refreshable) {
      const confirmed = s.confirmed_refresh_id === null ? 0 : Number(s.confirmed_refresh_id);
      const latest = Number(s.latest_refresh_id);
      // Superseded by a newer generation the client already used: it can refresh (soft logout).
      if (claims.refreshId < confirmed) throw unknownToken('Access token has been superseded', true);
      if (claims.refreshId === latest && confirmed !== latest) {
        await sessions.confirmRefreshId(this.deps.db, s.session_id, latest);
      }
    }
    return { userId: s.user_id, deviceId: s.device_id, sessionId: s.session_id, isAdmin: s.is_admin };
  }

  /** Ends the sessions of these devices and deletes the devices. */
  async revokeDevices(tx: Sql, userId: string, deviceIds: string[]): Promise<void> {
    await sessions.deleteSessions(tx, userId, { deviceIds });
    await devices.deleteDevices(tx, userId, deviceIds);
    await this.deps.onDevicesDeleted?.(tx, userId, deviceIds);
  }

  /** Ends every session of the user except (optionally) one device's; deletes those devices. */
  async revokeAll(tx: Sql, userId: string, exceptDeviceId: string | null = null): Promise<void> {
    const all = await devices.listDevices(tx, userId);
    const ids = all.map((d) => d.device_id).filter((d) => d !== exceptDeviceId);
    await sessions.deleteSessions(tx, userId, { allExceptDevice: exceptDeviceId });
    await devices.deleteDevices(tx, userId, ids);
    await this.deps.onDevicesDeleted?.(tx, userId, ids);
  }
}
