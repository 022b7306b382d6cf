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
/** Membership changes applied to a cached room at most; more, and its members are read again. */
const MAX_MEMBER_DELTAS = 100;

/** A room's joined member count and its joined members with an account here (user → member event). */
interface CachedRoom {
  membershipVersion: number;
  count: number;
  locals: Map<string, string>;
}

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
  /**
   * Per room: the joined member count and the joined members with an account here, valid while
   * the room's membership version (push_actions.activeLocalsNow) is the one they were read at.
   * The version is read in the event's transaction, under the stream lock, so a membership change
   * committed by any process (or earlier in this transaction) is seen; oldest-first LRU.
   */
  private readonly rooms = new Map<string, CachedRoom>();

  constructor(private readonly deps: { pushRules: PushRuleService; maxCachedUsers: number; maxCachedRooms: number }) {}

  /** The append hook: evaluates `event` for the room's members and records their actions. */
  readonly onEvent = async (tx: Sql, event: RoomEvent, streamOrdering: number, version: RoomVersionId): Promise<void> => {
    const { memberCount, locals, ignoring, createJson, powerLevelsJson } = await this.localMembers(tx, event.room_id, event.sender);
    // Users who ignore the sender get no notification for their events (as Synapse does).
    const targets = locals.filter((m) => m.userId !== event.sender && !ignoring.has(m.userId)).map((m) => ({ ...m, memberEventId: m.memberEventId as string | undefined }));
    if (event.type === 'm.room.member' && event.content.membership === 'invite' && event.state_key && event.state_key !== event.sender) {
      const invitee = event.state_key;
      const v = targets.some((t) => t.userId === invitee) ? undefined : await store.localUserRuleVersion(tx, invitee);
      if (v !== undefined && !(await accountData.usersIgnoring(tx, [invitee], event.sender)).has(invitee)) targets.push({ userId: invitee, version: v, memberEventId: undefined });
    }
    if (targets.length === 0) return;

    // Read with the members (same round trip); a v12 create event's JSON has no room_id.
    const asEvent = (json: string | undefined) => (json === undefined ? undefined : ({ room_id: event.room_id, ...JSON.parse(json) } as RoomEvent));
    const create = asEvent(createJson);
    const pl = asEvent(powerLevelsJson);
    const ctxBase: EvalContext = {
      memberCount,
      senderPowerLevel: userPowerLevel(event.sender, pl, create, version),
      notificationLevels: parsePowerLevels(pl?.content).notifications,
    };
    const prepared = prepareEvent(event as unknown as Record<string, unknown>);
    const rows: store.PushUserAction[] = [];
    const ruled: { t: (typeof targets)[number]; rules: CompiledRules }[] = [];
    for (const t of targets) ruled.push({ t, rules: await this.rulesOf(tx, t.userId, t.version) });
    // Display names come from the member events, read in one query for everyone who needs one.
    const names = await displayNames(tx, ruled.filter((r) => r.rules.needsDisplayName).map((r) => r.t.memberEventId));
    for (const { t, rules } of ruled) {
      let ctx = ctxBase;
      if (rules.needsDisplayName) ctx = { ...ctxBase, displayName: t.memberEventId === undefined ? undefined : names.get(t.memberEventId) };
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

  /**
   * The room's joined member count and its active local members with their rules versions: one
   * query while the room's membership is unchanged (sublinear in the room: only local members are
   * read), a reload after any membership change.
   */
  private async localMembers(
    tx: Sql,
    roomId: string,
    sender: string,
  ): Promise<{
    memberCount: number;
    locals: { userId: string; version: number; memberEventId: string }[];
    ignoring: Set<string>;
    createJson?: string;
    powerLevelsJson?: string;
  }> {
    let cached = this.rooms.get(roomId);
    let now = await store.activeLocalsNow(tx, roomId, cached ? [...cached.locals.keys()] : [], sender);
    if (!cached || cached.membershipVersion !== now.membershipVersion) {
      const before = cached ? new Set(cached.locals.keys()) : undefined;
      cached = (cached && (await this.applyDeltas(tx, roomId, cached, now.membershipVersion))) ?? (await this.reload(tx, roomId, now.membershipVersion));
      // Versions (and ignore lists) of members new to the cache.
      if (!before || [...cached.locals.keys()].some((u) => !before.has(u))) now = await store.activeLocalsNow(tx, roomId, [...cached.locals.keys()], sender);
    }
    this.rooms.delete(roomId); // re-inserted: the map stays oldest-first
    if (this.deps.maxCachedRooms > 0) this.rooms.set(roomId, cached);
    if (this.rooms.size > this.deps.maxCachedRooms) this.rooms.delete(this.rooms.keys().next().value!);
    const locals: { userId: string; version: number; memberEventId: string }[] = [];
    for (const [userId, memberEventId] of cached.locals) {
      const v = now.versions.get(userId);
      if (v !== undefined) locals.push({ userId, memberEventId, version: v });
    }
    return { memberCount: cached.count, locals, ignoring: now.ignoring, createJson: now.createJson, powerLevelsJson: now.powerLevelsJson };
  }

  /** The room's members read in full (linear in the room), valid at `membershipVersion` (read before them). */
  private async reload(tx: Sql, roomId: string, membershipVersion: number): Promise<CachedRoom> {
    const { count, locals } = await store.joinedMembersForPush(tx, roomId);
    return { membershipVersion, count, locals: new Map(locals.map((l) => [l.userId, l.memberEventId])) };
  }

  /**
   * The cached members moved forward by the membership changes since they were read (a join in a
   * big room costs its own rows, not the room's); undefined when the cache is no sound basis for
   * them (see push_actions.memberDeltasSince) or too many changed: then the caller reloads.
   */
  private async applyDeltas(tx: Sql, roomId: string, cached: CachedRoom, target: number): Promise<CachedRoom | undefined> {
    if (target < cached.membershipVersion) return undefined;
    const { basis, changes } = await store.memberDeltasSince(tx, roomId, cached.membershipVersion, MAX_MEMBER_DELTAS);
    if (!basis || changes.length === MAX_MEMBER_DELTAS || changes[changes.length - 1]?.streamOrdering !== target) return undefined;
    const next: CachedRoom = { membershipVersion: target, count: cached.count, locals: new Map(cached.locals) };
    for (const c of changes) {
      const was = c.before === 'join';
      const is = c.membership === 'join';
      if (was && !is) next.count--;
      if (!was && is) next.count++;
      if (!c.local) continue;
      if (is) next.locals.set(c.userId, c.eventId);
      else next.locals.delete(c.userId);
    }
    return next;
  }

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

/** Display names by member event id (absent: none, empty, or the member event is redacted). */
async function displayNames(sql: Sql, memberEventIds: (string | undefined)[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const ids = [...new Set(memberEventIds.filter((id): id is string => !!id))];
  if (ids.length === 0) return out;
  for (const [id, s] of await events.getEvents(sql, ids)) {
    const name = !s.redactedBy ? s.event.content.displayname : undefined;
    if (typeof name === 'string' && name !== '') out.set(id, name);
  }
  return out;
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
