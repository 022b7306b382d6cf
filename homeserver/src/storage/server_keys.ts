import type { Sql } from './db.js';

/** One key of another server, as `server_keys` keeps it (migration 0014). */
export interface StoredServerKey {
  serverName: string;
  keyId: string;
  /** Unpadded base64 ed25519 public key. */
  publicKey: string;
  /** `valid_until_ts` of the response that listed the key. */
  validUntilTs: number;
  /** Set when the response listed the key under `old_verify_keys`. */
  expiredTs: number | null;
  fetchedTs: number;
}

export interface KeyResponseToStore {
  serverName: string;
  validUntilTs: number;
  fetchedTs: number;
  /** Canonical JSON of the response with only the origin's signatures. */
  responseJson: string;
  keys: { keyId: string; publicKey: string; expiredTs: number | null }[];
}

interface Row {
  server_name: string;
  key_id: string;
  public_key: string;
  valid_until_ts: string | number;
  expired_ts: string | number | null;
  fetched_ts: string | number;
}

const toKey = (r: Row): StoredServerKey => ({
  serverName: r.server_name,
  keyId: r.key_id,
  publicKey: r.public_key,
  validUntilTs: Number(r.valid_until_ts),
  expiredTs: r.expired_ts === null ? null : Number(r.expired_ts),
  fetchedTs: Number(r.fetched_ts),
});

export async function getServerKey(sql: Sql, serverName: string, keyId: string): Promise<StoredServerKey | null> {
  const rows = await sql.query<Row>(
    'select server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts from server_keys where server_name = ? and key_id = ?',
    [serverName, keyId],
  );
  return rows[0] ? toKey(rows[0]) : null;
}

export async function listServerKeys(sql: Sql, serverName: string): Promise<StoredServerKey[]> {
  const rows = await sql.query<Row>(
    'select server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts from server_keys where server_name = ? order by key_id',
    [serverName],
  );
  return rows.map(toKey);
}

/**
 * Records every key of one verified response. A row is replaced only by a response whose
 * `valid_until_ts` is at least the stored one's: an older copy (from a notary's cache) never
 * overwrites newer knowledge.
 */
export async function storeKeyResponse(sql: Sql, r: KeyResponseToStore): Promise<void> {
  if (r.keys.length === 0) return;
  const values = r.keys.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ');
  const params = r.keys.flatMap((k) => [r.serverName, k.keyId, k.publicKey, r.validUntilTs, k.expiredTs, r.fetchedTs, r.responseJson]);
  await sql.query(
    `insert into server_keys (server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts, response_json)
     values ${values}
     on conflict (server_name, key_id) do update set
       public_key = excluded.public_key, valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts,
       fetched_ts = excluded.fetched_ts, response_json = excluded.response_json
     where server_keys.valid_until_ts <= excluded.valid_until_ts`,
    params,
  );
}

/**
 * The distinct stored responses of a server (newest first) whose `valid_until_ts` is at least
 * `minimumValidUntilTs`, restricted to those listing one of `keyIds` when given: what a notary serves.
 */
export async function keyResponses(
  sql: Sql,
  serverName: string,
  minimumValidUntilTs: number,
  keyIds: readonly string[] = [],
): Promise<{ responseJson: string; validUntilTs: number; fetchedTs: number }[]> {
  // Arrays expand to a placeholder list (`in (?)`), which cannot be empty.
  const byKey = keyIds.length > 0 ? 'and key_id in (?)' : '';
  const rows = await sql.query<{ response_json: string; valid_until_ts: string; fetched_ts: string }>(
    `select response_json, max(valid_until_ts) as valid_until_ts, max(fetched_ts) as fetched_ts from server_keys
     where server_name = ? and valid_until_ts >= ? ${byKey}
     group by response_json order by max(valid_until_ts) desc`,
    keyIds.length > 0 ? [serverName, minimumValidUntilTs, keyIds] : [serverName, minimumValidUntilTs],
  );
  return rows.map((r) => ({ responseJson: r.response_json, validUntilTs: Number(r.valid_until_ts), fetchedTs: Number(r.fetched_ts) }));
}
