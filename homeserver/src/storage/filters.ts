import type { Sql } from './db.js';

export async function insertFilter(sql: Sql, userId: string, json: string): Promise<string> {
  const rows = await sql.query<{ filter_id: string }>('insert into user_filters (user_id, json) values (?, ?) returning filter_id', [userId, json]);
  return String(rows[0]!.filter_id);
}

export async function getFilter(sql: Sql, userId: string, filterId: string): Promise<string | undefined> {
  if (!/^\d{1,18}$/.test(filterId)) return undefined;
  const rows = await sql.query<{ json: string }>('select json from user_filters where user_id = ? and filter_id = ?', [userId, filterId]);
  return rows[0]?.json;
}
