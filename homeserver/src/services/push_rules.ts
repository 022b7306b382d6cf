import { MatrixError, invalidParam, notFound } from '../core/errors.js';
import { parseUserId } from '../core/ids.js';
import { isObject } from '../core/json.js';
import type { Database, Sql } from '../storage/db.js';
import * as store from '../storage/push_rules.js';
import { bumpRulesVersion } from '../storage/push_actions.js';

/** The kinds of push rule, in the order they are checked (spec: "Push Rules"). */
export const PUSH_RULE_KINDS = ['override', 'content', 'room', 'sender', 'underride'] as const;
export type PushRuleKind = (typeof PUSH_RULE_KINDS)[number];

export type PushAction = string | Record<string, unknown>;

export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  conditions?: Record<string, unknown>[];
  pattern?: string;
  actions: PushAction[];
}

export type PushRuleset = Record<PushRuleKind, PushRule[]>;

const match = (key: string, pattern: string) => ({ kind: 'event_match', key, pattern });
const sound = (value: string) => ({ set_tweak: 'sound', value });
const highlight = { set_tweak: 'highlight' };
const rule = (rule_id: string, conditions: Record<string, unknown>[], actions: PushAction[], enabled = true): PushRule => ({
  rule_id,
  default: true,
  enabled,
  conditions,
  actions,
});

/**
 * The server-default push rules of the spec (v1.19 text, client-server-api/modules/push.md,
 * "Predefined Rules"), in the spec's order, for `userId`. Since v1.17 there are no default
 * content rules (the legacy body-matching mention rules were removed); the `content` kind remains.
 */
export function defaultPushRules(userId: string): PushRuleset {
  return {
    override: [
      rule('.m.rule.master', [], [], false),
      rule('.m.rule.suppress_notices', [match('content.msgtype', 'm.notice')], []),
      rule(
        '.m.rule.invite_for_me',
        [match('type', 'm.room.member'), match('content.membership', 'invite'), match('state_key', userId)],
        ['notify', sound('default')],
      ),
      rule('.m.rule.member_event', [match('type', 'm.room.member')], []),
      rule(
        '.m.rule.is_user_mention',
        [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }],
        ['notify', sound('default'), highlight],
      ),
      rule(
        '.m.rule.is_room_mention',
        [
          { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
          { kind: 'sender_notification_permission', key: 'room' },
        ],
        ['notify', highlight],
      ),
      rule('.m.rule.tombstone', [match('type', 'm.room.tombstone'), match('state_key', '')], ['notify', highlight]),
      rule('.m.rule.reaction', [match('type', 'm.reaction')], []),
      rule('.m.rule.room.server_acl', [match('type', 'm.room.server_acl'), match('state_key', '')], []),
      rule('.m.rule.suppress_edits', [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }], []),
    ],
    content: [],
    room: [],
    sender: [],
    underride: [
      rule('.m.rule.call', [match('type', 'm.call.invite')], ['notify', sound('ring')]),
      rule(
        '.m.rule.encrypted_room_one_to_one',
        [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.encrypted')],
        ['notify', sound('default')],
      ),
      rule('.m.rule.room_one_to_one', [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.message')], ['notify', sound('default')]),
      rule('.m.rule.message', [match('type', 'm.room.message')], ['notify']),
      rule('.m.rule.encrypted', [match('type', 'm.room.encrypted')], ['notify']),
    ],
  };
}

/** Limits on what one rule may hold (bytes of JSON), so a rule set stays small. */
const MAX_RULE_ID_LENGTH = 255;
const MAX_PATTERN_LENGTH = 1000;
const MAX_CONDITIONS = 50;
const MAX_ACTIONS = 50;
const MAX_RULE_BYTES = 16 * 1024;
/** Most user-defined rules one user may hold (all kinds together). */
const MAX_USER_RULES = 1000;

const MAX_SAFE = 2 ** 53 - 1;
const isScalar = (v: unknown) =>
  v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) <= MAX_SAFE);
const MEMBER_COUNT_RE = /^(==|<=|>=|<|>)?[0-9]{1,15}$/;
/** Historical actions that clients and servers MUST ignore (spec: "Historical Actions"). */
const HISTORICAL_ACTIONS = new Set(['dont_notify', 'coalesce']);

export function parseKind(kind: string | undefined): PushRuleKind {
  if (!PUSH_RULE_KINDS.includes(kind as PushRuleKind)) throw invalidParam(`Unknown push rule kind: ${kind}`);
  return kind as PushRuleKind;
}

/** Validates an `actions` array; historical actions are stripped. */
export function parseActions(raw: unknown): PushAction[] {
  if (!Array.isArray(raw)) throw new MatrixError(400, 'M_BAD_JSON', "'actions' must be an array");
  if (raw.length > MAX_ACTIONS) throw invalidParam(`At most ${MAX_ACTIONS} actions`);
  const out: PushAction[] = [];
  for (const a of raw) {
    if (a === 'notify') out.push(a);
    else if (typeof a === 'string' && HISTORICAL_ACTIONS.has(a)) continue;
    else if (isObject(a) && typeof a.set_tweak === 'string' && a.set_tweak !== '') {
      if (a.set_tweak === 'highlight' && 'value' in a && typeof a.value !== 'boolean') throw invalidParam("The 'highlight' tweak's value must be a boolean");
      if (a.set_tweak === 'sound' && typeof a.value !== 'string') throw invalidParam("The 'sound' tweak's value must be a string");
      out.push(a);
    } else throw invalidParam(`Unrecognised push action: ${JSON.stringify(a)}`);
  }
  return out;
}

function requireKey(c: Record<string, unknown>, key: string): void {
  if (typeof c[key] !== 'string') throw invalidParam(`A '${String(c.kind)}' condition needs a string '${key}'`);
}

/** Validates override/underride `conditions` (spec: "Conditions"); unknown condition kinds are kept (they never match). */
export function parseConditions(raw: unknown): Record<string, unknown>[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new MatrixError(400, 'M_BAD_JSON', "'conditions' must be an array");
  if (raw.length > MAX_CONDITIONS) throw invalidParam(`At most ${MAX_CONDITIONS} conditions`);
  return raw.map((c) => {
    if (!isObject(c) || typeof c.kind !== 'string' || c.kind === '') throw invalidParam('Each condition must be an object with a string kind');
    switch (c.kind) {
      case 'event_match':
        requireKey(c, 'key');
        requireKey(c, 'pattern');
        break;
      case 'event_property_is':
      case 'event_property_contains':
        requireKey(c, 'key');
        if (!('value' in c) || !isScalar(c.value)) throw invalidParam(`A '${c.kind}' condition needs a string, integer, boolean or null 'value'`);
        break;
      case 'room_member_count':
        if (typeof c.is !== 'string' || !MEMBER_COUNT_RE.test(c.is)) throw invalidParam("'room_member_count' needs 'is': an integer optionally prefixed by ==, <, >, >= or <=");
        break;
      case 'sender_notification_permission':
        requireKey(c, 'key');
        break;
      default:
        break; // contains_display_name (deprecated, no parameters) and unknown kinds
    }
    return c;
  });
}

/** The `rule_id` rules of PUT: no leading dot (server-default), no slashes; room/sender rules name a room/user. */
export function validateNewRuleId(kind: PushRuleKind, ruleId: string): void {
  if (ruleId === '' || ruleId.length > MAX_RULE_ID_LENGTH) throw invalidParam('Invalid rule id');
  if (ruleId.startsWith('.')) throw invalidParam('Rule ids starting with "." are reserved for server-default rules');
  if (ruleId.includes('/') || ruleId.includes('\\')) throw invalidParam('Rule ids may not contain "/" or "\\"');
  if (kind === 'room' && !/^!.+/.test(ruleId)) throw invalidParam('The rule id of a room rule must be a room id');
  if (kind === 'sender' && !parseUserId(ruleId)) throw invalidParam('The rule id of a sender rule must be a user id');
}

export interface PutRuleOptions {
  before?: string;
  after?: string;
}

function toRule(row: store.UserRuleRow): PushRule {
  const r: PushRule = { rule_id: row.rule_id, default: false, enabled: row.enabled, actions: JSON.parse(row.actions) };
  if (row.kind === 'override' || row.kind === 'underride') r.conditions = row.conditions ? JSON.parse(row.conditions) : [];
  if (row.kind === 'content') r.pattern = row.pattern ?? '';
  return r;
}

/**
 * Push rules of a user (spec: "Push Rules"): the server-default rules (with the user's changes to
 * their `enabled` and `actions`) merged with the user-defined ones. User-defined rules come before
 * the defaults of their kind, except that `.m.rule.master` always comes first. Evaluation against
 * events is in services/push/.
 */
export class PushRuleService {
  constructor(private readonly db: Database) {}

  /** `sql`: a transaction to read in (push evaluation runs inside the event's write). */
  async ruleset(userId: string, sql: Sql = this.db): Promise<PushRuleset> {
    const userRows = await store.listUserRules(sql, userId);
    const changes = await store.listDefaultChanges(sql, userId);
    const defaults = defaultPushRules(userId);
    for (const c of changes) {
      const d = defaults[c.kind as PushRuleKind]?.find((r) => r.rule_id === c.rule_id);
      if (!d) continue;
      if (c.enabled !== null) d.enabled = c.enabled;
      if (c.actions !== null) d.actions = JSON.parse(c.actions);
    }
    const out = {} as PushRuleset;
    for (const kind of PUSH_RULE_KINDS) {
      const user = userRows.filter((r) => r.kind === kind).map(toRule);
      const def = defaults[kind];
      out[kind] = kind === 'override' ? [...def.filter((r) => r.rule_id === '.m.rule.master'), ...user, ...def.filter((r) => r.rule_id !== '.m.rule.master')] : [...user, ...def];
    }
    return out;
  }

  async get(userId: string, kind: PushRuleKind, ruleId: string): Promise<PushRule> {
    const found = (await this.ruleset(userId))[kind].find((r) => r.rule_id === ruleId);
    if (!found) throw notFound('The push rule was not found.');
    return found;
  }

  /** Creates or replaces a user-defined rule, placed by `before`/`after` (spec: PUT /pushrules/global/{kind}/{ruleId}). */
  async put(userId: string, kind: PushRuleKind, ruleId: string, body: unknown, opts: PutRuleOptions = {}): Promise<void> {
    validateNewRuleId(kind, ruleId);
    if (!isObject(body)) throw new MatrixError(400, 'M_BAD_JSON', 'The body must be a JSON object');
    if (!('actions' in body)) throw new MatrixError(400, 'M_MISSING_PARAM', "Missing 'actions'");
    const actions = parseActions(body.actions);
    let conditions: Record<string, unknown>[] | null = null;
    let pattern: string | null = null;
    if (kind === 'override' || kind === 'underride') conditions = parseConditions(body.conditions);
    if (kind === 'content') {
      if (typeof body.pattern !== 'string' || body.pattern === '') throw new MatrixError(400, 'M_MISSING_PARAM', "Content rules need a string 'pattern'");
      if (body.pattern.length > MAX_PATTERN_LENGTH) throw invalidParam("'pattern' is too long");
      pattern = body.pattern;
    }
    const actionsJson = JSON.stringify(actions);
    const conditionsJson = conditions === null ? null : JSON.stringify(conditions);
    if (Buffer.byteLength(actionsJson) + Buffer.byteLength(conditionsJson ?? '') + Buffer.byteLength(pattern ?? '') > MAX_RULE_BYTES) {
      throw new MatrixError(413, 'M_TOO_LARGE', 'The push rule is too large');
    }
    // Spec: if both are given the rule goes right before `before`.
    const anchor = opts.before !== undefined ? { id: opts.before, before: true } : opts.after !== undefined ? { id: opts.after, before: false } : undefined;
    if (anchor && (anchor.id.startsWith('.') || anchor.id === ruleId)) {
      throw new MatrixError(400, 'M_UNKNOWN', `A rule cannot be placed relative to ${anchor.id.startsWith('.') ? 'a server-default rule' : 'itself'}`);
    }
    await this.db.transaction(async (tx) => {
      await store.lockUser(tx, userId);
      const rows = await store.listUserRules(tx, userId, kind);
      const existing = rows.find((r) => r.rule_id === ruleId);
      if (!existing && (await store.listUserRules(tx, userId)).length >= MAX_USER_RULES) {
        throw invalidParam(`At most ${MAX_USER_RULES} push rules per user`);
      }
      const order = rows.map((r) => r.rule_id).filter((id) => id !== ruleId);
      if (anchor) {
        const at = order.indexOf(anchor.id);
        if (at < 0) throw new MatrixError(400, 'M_UNKNOWN', `before/after rule not found: ${anchor.id}`);
        order.splice(anchor.before ? at : at + 1, 0, ruleId);
      } else if (existing) {
        order.splice(rows.indexOf(existing), 0, ruleId); // an update without before/after keeps its place
      } else {
        order.unshift(ruleId); // a new rule is the most important user-defined rule of its kind
      }
      await store.upsertUserRule(tx, userId, {
        kind,
        rule_id: ruleId,
        position: order.indexOf(ruleId),
        enabled: existing?.enabled ?? true,
        actions: actionsJson,
        conditions: conditionsJson,
        pattern,
      });
      await store.setPositions(tx, userId, kind, order);
      await bumpRulesVersion(tx, userId); // push evaluators' caches (services/push/evaluator.ts)
    });
  }

  async delete(userId: string, kind: PushRuleKind, ruleId: string): Promise<void> {
    if (ruleId.startsWith('.')) {
      // Server-default rules cannot be deleted; the spec lists only 404 for DELETE.
      throw notFound(defaultPushRules(userId)[kind].some((r) => r.rule_id === ruleId) ? 'Server-default push rules cannot be deleted' : 'The push rule was not found.');
    }
    if (!(await store.deleteUserRule(this.db, userId, kind, ruleId))) throw notFound('The push rule was not found.');
    await bumpRulesVersion(this.db, userId);
  }

  /** Sets `enabled` or `actions` of a user-defined or server-default rule. */
  async setAttribute(userId: string, kind: PushRuleKind, ruleId: string, field: 'enabled' | 'actions', body: unknown): Promise<void> {
    if (!isObject(body)) throw new MatrixError(400, 'M_BAD_JSON', 'The body must be a JSON object');
    let value: boolean | string;
    if (field === 'enabled') {
      if (typeof body.enabled !== 'boolean') throw new MatrixError(400, 'M_BAD_JSON', "'enabled' must be a boolean");
      value = body.enabled;
    } else {
      if (!('actions' in body)) throw new MatrixError(400, 'M_MISSING_PARAM', "Missing 'actions'");
      value = JSON.stringify(parseActions(body.actions));
      if (Buffer.byteLength(value) > MAX_RULE_BYTES) throw new MatrixError(413, 'M_TOO_LARGE', 'The actions are too large');
    }
    if (ruleId.startsWith('.')) {
      if (!defaultPushRules(userId)[kind].some((r) => r.rule_id === ruleId)) throw notFound('The push rule was not found.');
      await store.setDefaultChange(this.db, userId, kind, ruleId, field, value);
      await bumpRulesVersion(this.db, userId);
      return;
    }
    if (!(await store.updateUserRule(this.db, userId, kind, ruleId, field, value))) throw notFound('The push rule was not found.');
    await bumpRulesVersion(this.db, userId);
  }
}
