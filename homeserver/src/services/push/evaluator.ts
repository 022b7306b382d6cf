import type { Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as relationsStore from '../../storage/relations.js';
import * as store from '../../storage/push_actions.js';
import type { RoomEvent, RoomVersionId } from '../rooms/pdu.js';
import { parsePowerLevels, userPowerLevel } from '../rooms/power_levels.js';
import { relationIn } from '../rooms/relations.js';
import type { PushRuleService } from '../push_rules.js';
import { actionFlags, compileRuleset, evaluate, prepareEvent, type CompiledRules, type EvalContext } from './conditions.js';
import * as accountData from '../../storage/account_data.js';

/** How many relation hops lead to a thread root at most (the spec recommends 3). */
const THREAD_HOPS = 3;

/**
 * Runs every local member's push rules on each new room event, inside the event's write
 * transaction (TimelineService append hook), and stores the notifying outcomes in
 * event_push_actions: unread counts then change atomically with the event, so the same /sync
 * that carries the event carries its count (spec: "Server behaviour").
 *
 * Who is evaluated (as Synapse): the room's joined local users, and the target of an invite; never
 * the sender. Member count, display names and power levels are the room's state before the event.
 */
export class PushEvaluator {
  /** Compiled rules per user with the rules version they were compiled at (oldest-first LRU). */
  private readonly cache = new Map<string, { version: number; rules: CompiledRules }>();

  constructor(private readonly deps: { pushRules: PushRuleService; maxCachedUsers: number }) {}

  /** The append hook: evaluates `event` for the room's members and records their actions. */
  readonly onEvent = async (tx: Sql, event: RoomEvent, streamOrdering: number, version: RoomVersionId): Promise<void> => {
    const members = await store.joinedMembersWithRuleVersions(tx, event.room_id);
    let targets = members.filter((m) => m.local && m.userId !== event.sender).map((m) => ({ ...m, memberEventId: m.memberEventId as string | undefined }));
    if (event.type === 'm.room.member' && event.content.membership === 'invite' && event.state_key && event.state_key !== event.sender) {
      const invitee = event.state_key;
      const v = targets.some((t) => t.userId === invitee) ? undefined : await store.localUserRuleVersion(tx, invitee);
      if (v !== undefined) targets.push({ userId: invitee, local: true, version: v, memberEventId: undefined });
    }
    // Users who ignore the sender get no notification for their events (as Synapse does).
    const ignoring = await accountData.usersIgnoring(tx, targets.map((t) => t.userId), event.sender);
    if (ignoring.size > 0) targets = targets.filter((t) => !ignoring.has(t.userId));
    if (targets.length === 0) return;

    const st = await events.currentStateEvents(tx, event.room_id, ['m.room.create', 'm.room.power_levels']);
    const create = st.get('m.room.create')?.event;
    const pl = st.get('m.room.power_levels')?.event;
    const ctxBase: EvalContext = {
      memberCount: members.length,
      senderPowerLevel: userPowerLevel(event.sender, pl, create, version),
      notificationLevels: parsePowerLevels(pl?.content).notifications,
    };
    const prepared = prepareEvent(event as unknown as Record<string, unknown>);
    const rows: store.PushUserAction[] = [];
    for (const t of targets) {
      const rules = await this.rulesOf(tx, t.userId, t.version);
      let ctx = ctxBase;
      if (rules.needsDisplayName) ctx = { ...ctxBase, displayName: await displayName(tx, t.memberEventId) };
      const outcome = evaluate(rules, prepared, ctx);
      if (!outcome) continue;
      const flags = actionFlags(outcome.actions);
      if (!flags.notify && !flags.highlight) continue;
      rows.push({ userId: t.userId, notify: flags.notify, highlight: flags.highlight, actions: JSON.stringify(outcome.actions) });
    }
    if (rows.length === 0) return;
    const where = { eventId: event.event_id, roomId: event.room_id, streamOrdering, threadId: await threadOf(tx, event), ts: event.origin_server_ts };
    await store.insertActions(tx, where, rows);
  };

  /** The user's compiled rules, recompiled when their rules version moved (a change in any process). */
  private async rulesOf(sql: Sql, userId: string, version: number): Promise<CompiledRules> {
    const hit = this.cache.get(userId);
    if (hit) {
      this.cache.delete(userId); // re-inserted below: the map stays oldest-first
      if (hit.version === version) {
        this.cache.set(userId, hit);
        return hit.rules;
      }
    }
    const rules = compileRuleset(await this.deps.pushRules.ruleset(userId, sql));
    this.cache.set(userId, { version, rules });
    if (this.cache.size > this.deps.maxCachedUsers) this.cache.delete(this.cache.keys().next().value!);
    return rules;
  }

  /** Drops a user's cached rules in this process (other processes notice the version change). */
  forget(userId: string): void {
    this.cache.delete(userId);
  }
}

async function displayName(sql: Sql, memberEventId: string | undefined): Promise<string | undefined> {
  if (!memberEventId) return undefined;
  const s = await events.getEvent(sql, memberEventId);
  const name = s && !s.redactedBy ? s.event.content.displayname : undefined;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

/**
 * The thread an event belongs to for unread counts (spec: "Receiving notifications"): follow
 * relations up to THREAD_HOPS hops until an `m.thread` relation names the root; 'main' otherwise.
 */
export async function threadOf(sql: Sql, event: RoomEvent): Promise<string> {
  const first = relationIn(event.content);
  let rel = first ? { relType: first.relType, eventId: first.eventId } : undefined;
  for (let hop = 0; rel && hop < THREAD_HOPS; hop++) {
    if (rel.relType === 'm.thread') return rel.eventId;
    const next = await relationsStore.relationOf(sql, rel.eventId);
    rel = next ? { relType: next.relType, eventId: next.relatesToId } : undefined;
  }
  return 'main';
}
