/**
 * Other servers' signing keys (spec: "Retrieving server keys"): fetched from the server itself
 * or through trusted notaries, cached in `server_keys` with their validity, and looked up for
 * verifying requests (X-Matrix) and, later, events.
 *
 * Validity: a verify key is usable for a timestamp up to the lesser of its response's
 * `valid_until_ts` and 7 days after we fetched it (the spec's cap, so a stolen key cannot be made
 * valid for years); an old verify key up to its `expired_ts`, and only for events. Room versions
 * 1–4 ignore validity: callers pass `atTs: 0`.
 *
 * Fetches are coalesced per server; a failed fetch is not repeated for a back-off period that
 * doubles per failure; a successful one is not repeated within `minRefetchIntervalMs`, whatever
 * key id a (possibly hostile) request names.
 */
import type { Logger } from '../../core/logger.js';
import type { Sql } from '../../storage/db.js';
import type { TrustedKeyServer } from '../../core/config.js';
import { verifyJsonSignature } from '../../core/signing.js';
import * as serverKeys from '../../storage/server_keys.js';
import { FederationError, type FederationClient } from './client.js';
import type { ServerNameAccess } from './server_name.js';
import { KEY_ID_RE, KeyResponseError, verifyKeyResponse, type VerifiedKeyResponse } from './key_response.js';

/** The spec: "Servers MUST use the lesser of [valid_until_ts] and 7 days into the future". */
export const MAX_KEY_VALIDITY_FOR_VERIFYING_MS = 7 * 24 * 3600_000;
/** Key responses are small; anything bigger is not one. */
const KEY_RESPONSE_MAX_BYTES = 256 * 1024;
const NOTARY_RESPONSE_MAX_BYTES = 1024 * 1024;
const TRACKED_SERVERS = 10_000;

export interface VerifyKey {
  serverName: string;
  keyId: string;
  /** Unpadded base64 ed25519 public key. */
  publicKey: string;
  /** Last timestamp the key may sign for (after the 7-day cap); `Infinity` for our own key. */
  validUntilTs: number;
  /** Set for keys the server lists as old (usable for events up to this time only). */
  expiredTs?: number;
}

export interface KeyLookup {
  /** The time the signature must be valid at: now for requests, `origin_server_ts` for events; 0 ignores validity. */
  atTs: number;
  /** Accept keys from `old_verify_keys` (events only; never for requests). */
  allowOld?: boolean;
}

/** This server's key as the key ring needs it. */
export interface OwnKey {
  readonly serverName: string;
  readonly keyId: string;
  readonly publicKeyBase64: string;
}

export interface KeyRingOptions {
  db: Sql;
  ownKey: OwnKey;
  client: FederationClient;
  access: ServerNameAccess;
  trustedKeyServers: readonly TrustedKeyServer[];
  logger: Logger;
  now?: () => number;
  /** First pause after a failed fetch (doubles per further failure). Default 30 s. */
  backoffMs?: number;
  /** Longest pause after failures. Default 10 min. */
  maxBackoffMs?: number;
  /** No refetch of a server's keys within this long of the last successful fetch. Default 30 s. */
  minRefetchIntervalMs?: number;
  /**
   * How long a stored key read from `server_keys` is reused in this process without reading it
   * again (0: always read). Default 60 s. A key another process marks expired is noticed after
   * at most this long; keys this process stores replace the cached ones at once.
   */
  storedKeyCacheMs?: number;
}

export type FetchSource = 'direct' | 'notary';

/** A size-bounded map: the oldest entry goes when it is full. */
class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly limit: number) {
    super();
  }
  override set(key: K, value: V): this {
    this.delete(key);
    if (this.size >= this.limit) this.delete(this.keys().next().value!);
    return super.set(key, value);
  }
}

export class KeyRing {
  private readonly now: () => number;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly failures = new BoundedMap<string, { count: number; retryAt: number }>(TRACKED_SERVERS);
  private readonly lastFetched = new BoundedMap<string, number>(TRACKED_SERVERS);
  /** `server_keys` rows read recently, by "server key_id": a big join verifies thousands of events with one key. */
  private readonly stored = new BoundedMap<string, { key: serverKeys.StoredServerKey; readAt: number }>(TRACKED_SERVERS);

  constructor(private readonly opts: KeyRingOptions) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * A key of `serverName` usable at `lookup.atTs`: from the cache, else fetched (directly or through
   * the notaries). Null when there is none (unknown key, not valid then, or the fetch failed).
   */
  async getVerifyKey(serverName: string, keyId: string, lookup: KeyLookup): Promise<VerifyKey | null> {
    if (!KEY_ID_RE.test(keyId)) return null;
    if (serverName === this.opts.ownKey.serverName) {
      return keyId === this.opts.ownKey.keyId ? { serverName, keyId, publicKey: this.opts.ownKey.publicKeyBase64, validUntilTs: Infinity } : null;
    }
    const cached = await this.storedKey(serverName, keyId, true);
    const usable = cached && this.usable(cached, lookup);
    if (usable) return usable;
    await this.refresh(serverName);
    const fresh = await this.storedKey(serverName, keyId, false);
    return (fresh && this.usable(fresh, lookup)) || null;
  }

  /** A `server_keys` row, from the short-lived memo when `memo` and fresh enough. */
  private async storedKey(serverName: string, keyId: string, memo: boolean): Promise<serverKeys.StoredServerKey | null> {
    const ttl = this.opts.storedKeyCacheMs ?? 60_000;
    const id = `${serverName} ${keyId}`;
    const hit = this.stored.get(id);
    const now = this.now();
    if (memo && hit && now - hit.readAt < ttl) return hit.key;
    const key = await serverKeys.getServerKey(this.opts.db, serverName, keyId);
    if (key && ttl > 0) this.stored.set(id, { key, readAt: now });
    else this.stored.delete(id);
    return key;
  }

  /**
   * Whether `obj` carries a valid signature of `serverName` by a key usable at `lookup.atTs`
   * (one suffices). Never throws for bad input.
   */
  async verifySigned(obj: object, serverName: string, lookup: KeyLookup): Promise<boolean> {
    const sigs = (obj as { signatures?: unknown }).signatures;
    if (typeof sigs !== 'object' || sigs === null) return false;
    const mine = (sigs as Record<string, unknown>)[serverName];
    if (typeof mine !== 'object' || mine === null) return false;
    for (const keyId of Object.keys(mine)) {
      if (!keyId.startsWith('ed25519:')) continue;
      const key = await this.getVerifyKey(serverName, keyId, lookup);
      if (key && verifyJsonSignature(obj, serverName, keyId, key.publicKey)) return true;
    }
    return false;
  }

  /**
   * Fetches `serverName`'s keys now (coalesced with a fetch already running) unless it failed
   * recently or succeeded within `minRefetchIntervalMs`. Never throws: failures go to the log
   * and the back-off.
   */
  async refresh(serverName: string, opts: { directOnly?: boolean } = {}): Promise<void> {
    const now = this.now();
    const failed = this.failures.get(serverName);
    if (failed && failed.retryAt > now) return;
    const last = this.lastFetched.get(serverName);
    if (last !== undefined && now - last < (this.opts.minRefetchIntervalMs ?? 30_000)) return;
    let pending = this.inFlight.get(serverName);
    if (!pending) {
      pending = this.fetchAndStore(serverName, opts.directOnly ?? false).finally(() => this.inFlight.delete(serverName));
      this.inFlight.set(serverName, pending);
    }
    return pending;
  }

  /** Forgets back-off and refetch pauses (tests; an operator's "retry now"). */
  resetBackoff(serverName?: string): void {
    if (serverName === undefined) {
      this.failures.clear();
      this.lastFetched.clear();
      this.stored.clear();
    } else {
      this.failures.delete(serverName);
      this.lastFetched.delete(serverName);
      this.forgetStored(serverName);
    }
  }

  private forgetStored(serverName: string): void {
    for (const id of [...this.stored.keys()]) if (id.startsWith(`${serverName} `)) this.stored.delete(id);
  }

  /** GET /_matrix/key/v2/server on the server itself; the verified response (not stored). */
  async fetchDirect(serverName: string): Promise<VerifiedKeyResponse> {
    const json = await this.opts.client.request({ destination: serverName, method: 'GET', path: '/_matrix/key/v2/server', maxResponseBytes: KEY_RESPONSE_MAX_BYTES });
    return verifyKeyResponse(json, serverName);
  }

  /**
   * Asks one notary for `serverName`'s keys; returns the responses that are self-signed by the
   * server and signed by the notary with a key we trust (pinned in the config, else fetched
   * directly from the notary).
   */
  async fetchFromNotary(notary: TrustedKeyServer, serverName: string, minimumValidUntilTs: number): Promise<VerifiedKeyResponse[]> {
    const json = await this.opts.client.request({
      destination: notary.serverName,
      method: 'GET',
      path: `/_matrix/key/v2/query/${encodeURIComponent(serverName)}`,
      query: { minimum_valid_until_ts: minimumValidUntilTs },
      maxResponseBytes: NOTARY_RESPONSE_MAX_BYTES,
    });
    if (!Array.isArray(json.server_keys)) throw new KeyResponseError(`notary ${notary.serverName} answered without server_keys`);
    const out: VerifiedKeyResponse[] = [];
    for (const entry of json.server_keys) {
      try {
        const verified = verifyKeyResponse(entry, serverName);
        if (await this.signedByNotary(entry as object, notary)) out.push(verified);
        else this.opts.logger.warn({ notary: notary.serverName, server: serverName }, 'notary response not signed by the notary');
      } catch (err) {
        this.opts.logger.warn({ notary: notary.serverName, server: serverName, err: (err as Error).message }, 'notary returned an invalid key response');
      }
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------

  private usable(key: serverKeys.StoredServerKey, lookup: KeyLookup): VerifyKey | null {
    if (key.expiredTs !== null) {
      if (!lookup.allowOld || key.expiredTs < lookup.atTs) return null;
      return { serverName: key.serverName, keyId: key.keyId, publicKey: key.publicKey, validUntilTs: key.expiredTs, expiredTs: key.expiredTs };
    }
    const validUntilTs = Math.min(key.validUntilTs, key.fetchedTs + MAX_KEY_VALIDITY_FOR_VERIFYING_MS);
    if (validUntilTs < lookup.atTs) return null;
    return { serverName: key.serverName, keyId: key.keyId, publicKey: key.publicKey, validUntilTs };
  }

  private async signedByNotary(entry: object, notary: TrustedKeyServer): Promise<boolean> {
    const sigs = (entry as { signatures?: Record<string, Record<string, unknown>> }).signatures?.[notary.serverName];
    if (typeof sigs !== 'object' || sigs === null) return false;
    for (const keyId of Object.keys(sigs)) {
      const pinned = notary.verifyKeys[keyId];
      if (Object.keys(notary.verifyKeys).length > 0) {
        if (pinned && verifyJsonSignature(entry, notary.serverName, keyId, pinned)) return true;
        continue;
      }
      // No pinned keys: the notary's own keys, fetched from the notary directly (never through itself).
      let key = await serverKeys.getServerKey(this.opts.db, notary.serverName, keyId);
      if (!key || !this.usable(key, { atTs: this.now() })) {
        await this.refresh(notary.serverName, { directOnly: true });
        key = await serverKeys.getServerKey(this.opts.db, notary.serverName, keyId);
      }
      const usable = key && this.usable(key, { atTs: this.now() });
      if (usable && verifyJsonSignature(entry, notary.serverName, keyId, usable.publicKey)) return true;
    }
    return false;
  }

  private async store(r: VerifiedKeyResponse): Promise<void> {
    await serverKeys.storeKeyResponse(this.opts.db, {
      serverName: r.serverName,
      validUntilTs: r.validUntilTs,
      fetchedTs: this.now(),
      responseJson: r.originSignedJson,
      keys: [...r.verifyKeys.map((k) => ({ ...k, expiredTs: null })), ...r.oldVerifyKeys],
    });
    this.forgetStored(r.serverName);
  }

  /** Notaries first when configured (as Synapse does), then the server itself. */
  private async fetchAndStore(serverName: string, directOnly: boolean): Promise<void> {
    const errors: string[] = [];
    let source: FetchSource | null = null;
    if (!this.opts.access.isAllowed(serverName)) {
      errors.push('denied by the allow/deny lists');
    } else {
      const notaries = directOnly ? [] : this.opts.trustedKeyServers.filter((n) => n.serverName !== serverName);
      for (const notary of notaries) {
        try {
          const responses = await this.fetchFromNotary(notary, serverName, this.now());
          for (const r of responses) await this.store(r);
          if (responses.length > 0) {
            source = 'notary';
            break;
          }
          errors.push(`${notary.serverName}: no valid keys`);
        } catch (err) {
          errors.push(`${notary.serverName}: ${describe(err)}`);
        }
      }
      if (source === null) {
        try {
          await this.store(await this.fetchDirect(serverName));
          source = 'direct';
        } catch (err) {
          errors.push(`direct: ${describe(err)}`);
        }
      }
    }
    const now = this.now();
    if (source !== null) {
      this.failures.delete(serverName);
      this.lastFetched.set(serverName, now);
      this.opts.logger.debug({ server: serverName, source }, 'fetched server keys');
      return;
    }
    const count = (this.failures.get(serverName)?.count ?? 0) + 1;
    const pause = Math.min(this.opts.maxBackoffMs ?? 600_000, (this.opts.backoffMs ?? 30_000) * 2 ** (count - 1));
    this.failures.set(serverName, { count, retryAt: now + pause });
    this.opts.logger.info({ server: serverName, errors, retryInMs: pause }, 'cannot fetch server keys');
  }
}

function describe(err: unknown): string {
  if (err instanceof FederationError || err instanceof KeyResponseError) return err.message;
  return String(err);
}
