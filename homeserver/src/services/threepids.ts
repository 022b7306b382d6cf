// PLACEHOLDER being replaced by the email/3pid work; signatures are the contract.
import type { Database, Sql } from '../storage/db.js';
import type { Mailer } from './mailer.js';
import type { Logger } from '../core/logger.js';
import type { ValidatedThreepid } from './auth/uia.js';
import type { JsonObject } from '../core/json.js';

export type ThreepidPurpose = 'register' | 'bind' | 'password_reset';

export interface ThreepidServiceDeps {
  db: Database;
  mailer: Mailer;
  publicBaseUrl: string;
  serverName: string;
  tokenLifetimeMs: number;
  logger: Logger;
}

export class ThreepidService {
  constructor(private readonly deps: ThreepidServiceDeps) {}

  /** `threepid_creds` {sid, client_secret} of a validated, unexpired, unused session for `purpose`. */
  async checkValidated(_creds: JsonObject, _purpose: ThreepidPurpose): Promise<ValidatedThreepid> {
    throw new Error('not implemented');
  }

  /** Marks the validation used (single use) inside the caller's transaction; false if already used. */
  async consume(_tx: Sql, _sid: string): Promise<boolean> {
    throw new Error('not implemented');
  }
}
