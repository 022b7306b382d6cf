import type { Sql } from './db.js';

export async function getAlias(sql: Sql, alias: string): Promise<{ room_id: string; creator: string } | undefined> {
  const rows = await sql.query<{ room_id: string; creator: string }>('select room_id, creator from room_aliases where alias = ?', [alias]);
  return rows[0];
}

export async function insertAlias(sql: Sql, alias: string, roomId: string, creator: string): Promise<boolean> {
  const rows = await sql.query(
    'insert into room_aliases (alias, room_id, creator, created_ts) values (?, ?, ?, ?) on conflict do nothing returning alias',
    [alias, roomId, creator, Date.now()],
  );
  return rows.length === 1;
}

export async function deleteAlias(sql: Sql, alias: string): Promise<boolean> {
  const rows = await sql.query('delete from room_aliases where alias = ? returning alias', [alias]);
  return rows.length === 1;
}

export async function aliasesOfRoom(sql: Sql, roomId: string): Promise<string[]> {
  const rows = await sql.query<{ alias: string }>('select alias from room_aliases where room_id = ? order by alias', [roomId]);
  return rows.map((r) => r.alias);
}
