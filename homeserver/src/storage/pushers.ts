import type { Sql } from './db.js';

/** Pushers (migration 0011): one per (user, app_id, pushkey), with the sender's cursor and lease. */

export interface PusherRow {
  id: number;
  userId: string;
  deviceId: string | null;
  kind: string;
  appId: string;
  pushkey: string;
  /** Milliseconds when the pushkey was set. */
  pushkeyTs: number;
  appDisplayName: string;
  deviceDisplayName: string;
  profileTag: string | null;
  lang: string;
  data: Record<string, unknown>;
  lastStreamOrdering: number;
}

type Raw = {
  id: string;
  user_id: string;
  device_id: string | null;
  kind: string;
  app_id: string;
  pushkey: string;
  pushkey_ts: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  data: string;
  last_stream_ordering: string;
};
const COLUMNS =
  'id, user_id, device_id, kind, app_id, pushkey, pushkey_ts, app_display_name, device_display_name, profile_tag, lang, data, last_stream_ordering';
const toRow = (r: Raw): PusherRow => ({
  id: Number(r.id),
  userId: r.user_id,
  deviceId: r.device_id,
  kind: r.kind,
  appId: r.app_id,
  pushkey: r.pushkey,
  pushkeyTs: Number(r.pushkey_ts),
  appDisplayName: r.app_display_name,
  deviceDisplayName: r.device_display_name,
  profileTag: r.profile_tag,
  lang: r.lang,
  data: JSON.parse(r.data) as Record<string, unknown>,
  lastStreamOrdering: Number(r.last_stream_ordering),
});

/** The database clock in milliseconds: lease times compare across hosts with one clock. */
const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

export async function listForUser(sql: Sql, userId: string): Promise<PusherRow[]> {
  const rows = await sql.query<Raw>(`select ${COLUMNS} from pushers where user_id = ? order by id`, [userId]);
  return rows.map(toRow);
}

export async function get(sql: Sql, id: number): Promise<PusherRow | undefined> {
  const rows = await sql.query<Raw>(`select ${COLUMNS} from pushers where id = ?`, [id]);
  return rows[0] && toRow(rows[0]);
}

export async function countForUser(sql: Sql, userId: string): Promise<number> {
  const rows = await sql.query<{ n: string }>('select count(*) as n from pushers where user_id = ?', [userId]);
  return Number(rows[0]!.n);
}

export interface NewPusher {
  userId: string;
  deviceId: string;
  kind: string;
  appId: string;
  pushkey: string;
  appDisplayName: string;
  deviceDisplayName: string;
  profileTag: string | null;
  lang: string;
  data: Record<string, unknown>;
  /** The cursor of a new pusher: it pushes only what comes after it was set. */
  startAfter: number;
  now: number;
}

/** Creates the pusher, or updates its settings (keeping its cursor and pushkey_ts). */
export async function upsert(sql: Sql, p: NewPusher): Promise<void> {
  await sql.query(
    `insert into pushers (user_id, device_id, kind, app_id, pushkey, pushkey_ts, app_display_name, device_display_name, profile_tag, lang, data, last_stream_ordering, created_ts)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     on conflict (user_id, app_id, pushkey) do update set device_id = excluded.device_id, kind = excluded.kind,
       app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name,
       profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data`,
    [p.userId, p.deviceId, p.kind, p.appId, p.pushkey, p.now, p.appDisplayName, p.deviceDisplayName, p.profileTag, p.lang, JSON.stringify(p.data), p.startAfter, p.now],
  );
}

export async function deleteOne(sql: Sql, userId: string, appId: string, pushkey: string): Promise<boolean> {
  const rows = await sql.query('delete from pushers where user_id = ? and app_id = ? and pushkey = ? returning id', [userId, appId, pushkey]);
  return rows.length > 0;
}

/** Removes other users' pushers with this app id and pushkey (`append: false`). */
export async function deleteOthers(sql: Sql, userId: string, appId: string, pushkey: string): Promise<void> {
  await sql.query('delete from pushers where app_id = ? and pushkey = ? and user_id <> ?', [appId, pushkey, userId]);
}

/** Pushers that belonged to these devices (their sessions ended). */
export async function deleteForDevices(sql: Sql, userId: string, deviceIds: readonly string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  await sql.query('delete from pushers where user_id = ? and device_id in (?)', [userId, [...deviceIds]]);
}

export async function deleteById(sql: Sql, id: number): Promise<void> {
  await sql.query('delete from pushers where id = ?', [id]);
}

// ---- the sender's lease and cursor ----

/**
 * Pushers with notifications after their cursor; with `roomIds`, only notifications in those rooms
 * (a wake-up names the rooms that changed).
 */
export async function withBacklog(sql: Sql, roomIds?: readonly string[]): Promise<number[]> {
  const rooms = roomIds && roomIds.length > 0 ? ' and a.room_id in (?)' : '';
  const rows = await sql.query<{ id: string }>(
    `select p.id from pushers p where exists (select 1 from event_push_actions a
       where a.user_id = p.user_id and a.notify and a.stream_ordering > p.last_stream_ordering${rooms})`,
    rooms ? [[...roomIds!]] : [],
  );
  return rows.map((r) => Number(r.id));
}

/** Claims a pusher for `owner` unless another owner's lease is live; true when claimed. */
export async function claim(sql: Sql, id: number, owner: string, token: string, leaseMs: number): Promise<boolean> {
  const rows = await sql.query(
    `update pushers set lease_owner = ?, lease_token = ?, lease_until = ${NOW_MS} + ?
     where id = ? and (lease_until is null or lease_until < ${NOW_MS} or lease_owner = ?) returning id`,
    [owner, token, leaseMs, id, owner],
  );
  return rows.length > 0;
}

/** Extends a held lease; false when it was lost (taken over, or the pusher deleted). */
export async function renew(sql: Sql, id: number, token: string, leaseMs: number): Promise<boolean> {
  const rows = await sql.query(`update pushers set lease_until = ${NOW_MS} + ? where id = ? and lease_token = ? returning id`, [leaseMs, id, token]);
  return rows.length > 0;
}

export async function release(sql: Sql, id: number, token: string): Promise<void> {
  await sql.query('update pushers set lease_owner = null, lease_token = null, lease_until = null where id = ? and lease_token = ?', [id, token]);
}

/** Moves the cursor while the lease is held; false when the lease was lost. */
export async function advance(sql: Sql, id: number, token: string, streamOrdering: number): Promise<boolean> {
  const rows = await sql.query('update pushers set last_stream_ordering = greatest(last_stream_ordering, ?) where id = ? and lease_token = ? returning id', [
    streamOrdering,
    id,
    token,
  ]);
  return rows.length > 0;
}
