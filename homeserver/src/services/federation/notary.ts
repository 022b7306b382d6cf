/**
 * Our side of key exchange: publishing our own keys (`/_matrix/key/v2/server`) and answering
 * notary queries (`/_matrix/key/v2/query`) from the `server_keys` cache or by fetching, every
 * answer signed by the origin and additionally by us.
 */
import type { Logger } from '../../core/logger.js';
import type { Sql } from '../../storage/db.js';
import { parseStrictJson, type JsonObject } from '../../core/canonical_json.js';
import type { Signatures } from '../../core/signing.js';
import * as serverKeys from '../../storage/server_keys.js';
import type { KeyRing } from './key_ring.js';
import type { ServerNameAccess } from './server_name.js';
import { parseServerName } from './server_name.js';

/** Our signing key as publishing needs it (`ServerSigningKey`). */
export interface PublishingKey {
  readonly serverName: string;
  readonly keyId: string;
  readonly publicKeyBase64: string;
  sign<T extends object>(obj: T): Omit<T, 'signatures'> & { signatures: Signatures };
}

export interface NotaryQuery {
  serverName: string;
  /** Key ids asked for; empty: all. */
  keyIds: string[];
  /** Answers must be valid until at least this time (default: now). */
  minimumValidUntilTs: number;
}

export interface KeyNotaryOptions {
  db: Sql;
  key: PublishingKey;
  keyRing: KeyRing;
  access: ServerNameAccess;
  /** How far ahead our own `valid_until_ts` lies (HEARTH_FEDERATION_KEY_VALIDITY_MS). */
  keyValidityMs: number;
  logger: Logger;
  now?: () => number;
}

export class KeyNotary {
  private readonly now: () => number;

  constructor(private readonly opts: KeyNotaryOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Our self-signed key response. We have no old keys yet: the key is never rotated. */
  ownKeys(): JsonObject {
    const { key } = this.opts;
    return key.sign({
      server_name: key.serverName,
      verify_keys: { [key.keyId]: { key: key.publicKeyBase64 } },
      old_verify_keys: {},
      valid_until_ts: this.now() + this.opts.keyValidityMs,
    }) as JsonObject;
  }

  /**
   * The key responses for each queried server, each signed by us on top of the origin's
   * signature. A cached response valid until `minimumValidUntilTs` is served as is while it is in
   * the first half of its lifetime (the spec's advice); otherwise we fetch, and if the server does
   * not answer we serve what we have that still meets the minimum. Servers we may not talk to, or
   * have nothing for, are left out.
   */
  async query(queries: NotaryQuery[]): Promise<JsonObject[]> {
    const out: JsonObject[] = [];
    for (const q of queries) {
      if (q.serverName === this.opts.key.serverName) {
        out.push(this.ownKeys());
        continue;
      }
      if (!parseServerName(q.serverName) || !this.opts.access.isAllowed(q.serverName)) continue;
      let cached = await serverKeys.keyResponses(this.opts.db, q.serverName, q.minimumValidUntilTs, q.keyIds);
      const now = this.now();
      const fresh = cached.some((r) => r.fetchedTs + (r.validUntilTs - r.fetchedTs) / 2 > now);
      if (!fresh) {
        await this.opts.keyRing.refresh(q.serverName, { directOnly: true });
        cached = await serverKeys.keyResponses(this.opts.db, q.serverName, q.minimumValidUntilTs, q.keyIds);
      }
      for (const r of cached) out.push(this.opts.key.sign(parseStrictJson(r.responseJson) as JsonObject) as JsonObject);
    }
    return out;
  }
}
