import type { Sql } from './db.js';

/** A user-defined push rule as stored; `actions` and `conditions` are JSON text. */
export interface UserRuleRow {
  kind: string;
  rule_id: string;
  position: number;
  enabled: boolean;
  actions: string;
  conditions: string | null;
  pattern: string | null;
}

/** A user's change to a server-default rule; null fields keep the default. */
export interface DefaultChangeRow {
  kind: string;
  rule_id: string;
  enabled: boolean | null;
  actions: string | null;
}

/** Advisory-lock class of push rule writes (two-key form, so it never meets single-key locks). */
const LOCK_CLASS = 0x50555348; // "PUSH"

/** Serialises a user's push rule writes for the rest of the transaction. */
export async function lockUser(tx: Sql, userId: string): Promise<void> {
  await tx.query('select pg_advisory_xact_lock(?, hashtext(?))', [LOCK_CLASS, userId]);
}

/** The user's rules, each kind in priority order (most important first). */
export async function listUserRules(sql: Sql, userId: string, kind?: string): Promise<UserRuleRow[]> {
  const rows = await sql.query<UserRuleRow>(
    `select kind, rule_id, position, enabled, actions, conditions, pattern from push_rules
     where user_id = ?${kind ? ' and kind = ?' : ''} order by kind, position, rule_id`,
    kind ? [userId, kind] : [userId],
  );
  return rows.map((r) => ({ ...r, position: Number(r.position) }));
}

export async function listDefaultChanges(sql: Sql, userId: string): Promise<DefaultChangeRow[]> {
  return sql.query<DefaultChangeRow>('select kind, rule_id, enabled, actions from push_rule_default_changes where user_id = ?', [userId]);
}

/** Inserts or replaces a user rule (its position included). */
export async function upsertUserRule(tx: Sql, userId: string, r: Omit<UserRuleRow, 'enabled'> & { enabled?: boolean }): Promise<void> {
  await tx.query(
    `insert into push_rules (user_id, kind, rule_id, position, enabled, actions, conditions, pattern)
     values (?, ?, ?, ?, ?, ?, ?, ?)
     on conflict (user_id, kind, rule_id) do update set position = excluded.position, enabled = excluded.enabled,
       actions = excluded.actions, conditions = excluded.conditions, pattern = excluded.pattern`,
    [userId, r.kind, r.rule_id, r.position, r.enabled ?? true, r.actions, r.conditions, r.pattern],
  );
}

/** Renumbers a kind's user rules to follow `ruleIds` (most important first). */
export async function setPositions(tx: Sql, userId: string, kind: string, ruleIds: string[]): Promise<void> {
  if (ruleIds.length === 0) return;
  await tx.query(
    `update push_rules p set position = v.pos from (values ${ruleIds.map(() => '(?, ?::bigint)').join(', ')}) as v(rule_id, pos)
     where p.user_id = ? and p.kind = ? and p.rule_id = v.rule_id`,
    [...ruleIds.flatMap((id, i) => [id, i]), userId, kind],
  );
}

/** Sets `enabled` or `actions` of a user rule; false when there is no such rule. */
export async function updateUserRule(sql: Sql, userId: string, kind: string, ruleId: string, field: 'enabled' | 'actions', value: boolean | string): Promise<boolean> {
  const rows = await sql.query(
    `update push_rules set ${field === 'enabled' ? 'enabled' : 'actions'} = ? where user_id = ? and kind = ? and rule_id = ? returning rule_id`,
    [value, userId, kind, ruleId],
  );
  return rows.length > 0;
}

export async function deleteUserRule(sql: Sql, userId: string, kind: string, ruleId: string): Promise<boolean> {
  const rows = await sql.query('delete from push_rules where user_id = ? and kind = ? and rule_id = ? returning rule_id', [userId, kind, ruleId]);
  return rows.length > 0;
}

/** Records a change to a server-default rule's `enabled` or `actions`. */
export async function setDefaultChange(sql: Sql, userId: string, kind: string, ruleId: string, field: 'enabled' | 'actions', value: boolean | string): Promise<void> {
  const column = field === 'enabled' ? 'enabled' : 'actions';
  await sql.query(
    `insert into push_rule_default_changes (user_id, kind, rule_id, ${column}) values (?, ?, ?, ?)
     on conflict (user_id, kind, rule_id) do update set ${column} = excluded.${column}`,
    [userId, kind, ruleId, value],
  );
}
