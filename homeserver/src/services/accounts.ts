import { MatrixError, forbidden, notFound } from '../core/errors.js';
import { makeUserId, parseUserId, validateNewLocalpart } from '../core/ids.js';
import type { Database, Sql } from '../storage/db.js';
import * as users from '../storage/users.js';
import * as threepids from '../storage/threepids.js';
import { deleteOpenidTokensOf, eraseUser } from '../storage/openid_erasure.js';
import type { PasswordHasher } from './passwords.js';
import type { SessionService } from './auth/sessions.js';

export interface AccountSummary {
  userId: string;
  displayname: string | null;
  isAdmin: boolean;
  deactivated: boolean;
  hasPassword: boolean;
  createdTs: number;
}

function summary(u: users.UserRow): AccountSummary {
  return {
    userId: u.user_id,
    displayname: u.displayname,
    isAdmin: u.is_admin,
    deactivated: u.deactivated,
    hasPassword: u.password_hash !== null,
    createdTs: Number(u.created_ts),
  };
}

export interface AccountServiceDeps {
  db: Database;
  serverName: string;
  passwords: PasswordHasher;
  sessions: SessionService;
  passwordMinLength: number;
}

/** Accounts: creation, password checks and changes, deactivation. */
export class AccountService {
  constructor(private readonly deps: AccountServiceDeps) {}

  get serverName(): string {
    return this.deps.serverName;
  }

  /** The full user id for a localpart or a full id of this server; M_INVALID_USERNAME otherwise. */
  userIdFor(localpartOrId: string): string {
    if (localpartOrId.startsWith('@')) {
      const parsed = parseUserId(localpartOrId);
      if (!parsed || parsed.serverName !== this.deps.serverName) {
        throw new MatrixError(400, 'M_INVALID_USERNAME', 'Not a user id of this server');
      }
      return makeUserId(parsed.localpart.toLowerCase(), this.deps.serverName);
    }
    return makeUserId(localpartOrId.toLowerCase(), this.deps.serverName);
  }

  checkPasswordStrength(password: string): void {
    if (password.length < this.deps.passwordMinLength) {
      throw new MatrixError(400, 'M_WEAK_PASSWORD', `Password must be at least ${this.deps.passwordMinLength} characters`);
    }
    if (password.length > 512) throw new MatrixError(400, 'M_WEAK_PASSWORD', 'Password is too long (512 at most)');
  }

  /** Throws M_INVALID_USERNAME / M_USER_IN_USE / M_EXCLUSIVE as /register/available would. */
  async checkAvailable(localpart: string): Promise<string> {
    validateNewLocalpart(localpart, this.deps.serverName);
    const userId = makeUserId(localpart, this.deps.serverName);
    if (await users.getUser(this.deps.db, userId)) {
      throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken.');
    }
    return userId;
  }

  /** Creates the account inside `tx`; M_USER_IN_USE if the id was taken meanwhile. */
  async create(
    tx: Sql,
    opts: { localpart: string; password: string | null; isAdmin?: boolean },
  ): Promise<string> {
    validateNewLocalpart(opts.localpart, this.deps.serverName);
    const userId = makeUserId(opts.localpart, this.deps.serverName);
    const passwordHash = opts.password === null ? null : await this.deps.passwords.hash(opts.password);
    const inserted = await users.insertUser(tx, {
      userId,
      localpart: opts.localpart,
      passwordHash,
      displayname: opts.localpart,
      isAdmin: opts.isAdmin,
    });
    if (!inserted) throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken.');
    return userId;
  }

  /** The user id if the password is right for a live account; null otherwise (no detail leaks). */
  async checkPassword(userId: string, password: string): Promise<string | null> {
    const user = await users.getUser(this.deps.db, userId);
    // Hash even for unknown users so response timing does not reveal which accounts exist.
    const ok = await this.deps.passwords.verify(password, user?.password_hash ?? DUMMY_HASH);
    return user && ok && !user.deactivated ? user.user_id : null;
  }

  /** `alsoInTx` runs in the same transaction (e.g. spending the email validation of a reset). */
  async changePassword(
    userId: string,
    newPassword: string,
    keepDeviceId: string | null,
    logoutDevices: boolean,
    alsoInTx?: (tx: Sql) => Promise<void>,
  ): Promise<void> {
    this.checkPasswordStrength(newPassword);
    const hash = await this.deps.passwords.hash(newPassword);
    await this.deps.db.transaction(async (tx) => {
      if (alsoInTx) await alsoInTx(tx);
      await users.setPasswordHash(tx, userId, hash);
      if (logoutDevices) await this.deps.sessions.revokeAll(tx, userId, keepDeviceId);
    });
    if (logoutDevices) this.deps.sessions.revoked(userId);
  }

  /** With `erase` (spec v1.10), also erased: account data gone, events hidden from later joiners (storage/openid_erasure.ts). */
  async deactivate(userId: string, opts: { erase?: boolean } = {}): Promise<void> {
    await this.deps.db.transaction(async (tx) => {
      const user = await users.getUser(tx, userId);
      if (!user || user.deactivated) throw forbidden('Account is already deactivated');
      await this.deps.sessions.revokeAll(tx, userId, null);
      await threepids.deleteAllForUser(tx, userId);
      await users.markDeactivated(tx, userId);
      await deleteOpenidTokensOf(tx, userId);
      if (opts.erase) await eraseUser(tx, userId, Date.now());
    });
    this.deps.sessions.revoked(userId);
  }

  // ---- administration (the admin command line) ----

  /** Creates an account in its own transaction; `password: null` leaves it without one. */
  async createAccount(opts: { localpart: string; password: string | null; isAdmin?: boolean }): Promise<string> {
    if (opts.password !== null) this.checkPasswordStrength(opts.password);
    return this.deps.db.transaction((tx) => this.create(tx, opts));
  }

  /** What an administrator may see of an account (never the password hash). */
  async describe(userId: string): Promise<AccountSummary | undefined> {
    const user = await users.getUser(this.deps.db, userId);
    return user && summary(user);
  }

  /** Accounts in user id order, after `from`. */
  async list(limit: number, from = ''): Promise<AccountSummary[]> {
    return (await users.listUsers(this.deps.db, limit, from)).map(summary);
  }

  /** M_NOT_FOUND for an unknown account. */
  async setAdmin(userId: string, isAdmin: boolean): Promise<void> {
    if (!(await users.setAdmin(this.deps.db, userId, isAdmin))) throw notFound(`No account ${userId}`);
  }

  /** Sets a new password and ends every session; M_NOT_FOUND unless the account is live. */
  async resetPassword(userId: string, newPassword: string): Promise<void> {
    const user = await users.getUser(this.deps.db, userId);
    if (!user || user.deactivated) throw notFound(`No active account ${userId}`);
    await this.changePassword(userId, newPassword, null, true);
  }
}

/** A valid hash of a random password, verified against for unknown users. */
const DUMMY_HASH = '$scrypt$N=1024,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
