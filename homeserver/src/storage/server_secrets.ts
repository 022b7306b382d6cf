import type { Sql } from './db.js';

/**
 * Returns the secret stored under `name`, creating it with `make()` on first use.
 * Safe when several processes start together: the first insert wins and all read it back.
 */
export async function getOrCreateSecret(sql: Sql, name: string, make: () => Promise<string>): Promise<string> {
  const existing = await sql.query<{ value: string }>('select value from server_secrets where name = ?', [name]);
  if (existing[0]) return existing[0].value;
  await sql.query('insert into server_secrets (name, value, created_ts) values (?, ?, ?) on conflict (name) do nothing', [
    name,
    await make(),
    Date.now(),
  ]);
  const rows = await sql.query<{ value: string }>('select value from server_secrets where name = ?', [name]);
  return rows[0]!.value;
}
