import { randomString } from '../core/ids.js';
import type { Database, Sql } from '../storage/db.js';
import * as store from '../storage/registration_tokens.js';

/** Registration tokens (spec v1.2 `m.login.registration_token`), issued by admins. */
export class RegistrationTokenService {
  constructor(private readonly db: Database) {}

  async isValid(token: string, now = Date.now()): Promise<boolean> {
    const row = await store.getRegistrationToken(this.db, token);
    if (!row) return false;
    if (row.expiry_ts !== null && Number(row.expiry_ts) <= now) return false;
    return row.uses_allowed === null || row.completed < row.uses_allowed;
  }

  /** Spends one use inside the registration's transaction; false when none is left. */
  consume(tx: Sql, token: string): Promise<boolean> {
    return store.consumeRegistrationToken(tx, token, Date.now());
  }

  /** Creates a token (random unless given); spec grammar: [A-Za-z0-9._~-], at most 64 chars. */
  async create(opts: { token?: string; usesAllowed?: number | null; expiryTs?: number | null } = {}): Promise<string> {
    const token = opts.token ?? randomString(16);
    if (!/^[A-Za-z0-9._~-]{1,64}$/.test(token)) throw new Error('token must match [A-Za-z0-9._~-]{1,64}');
    const ok = await store.insertRegistrationToken(this.db, {
      token,
      usesAllowed: opts.usesAllowed ?? null,
      expiryTs: opts.expiryTs ?? null,
    });
    if (!ok) throw new Error(`registration token '${token}' already exists`);
    return token;
  }

  list() {
    return store.listRegistrationTokens(this.db);
  }
}
