import type { PushAction, PushRule, PushRuleset } from '../push_rules.js';
import { PUSH_RULE_KINDS } from '../push_rules.js';

/**
 * Push rule evaluation (spec: "Push Rules", "Conditions"), pure and synchronous: rules are compiled
 * once per user (globs and key paths parsed), then run against each event with what the room
 * contributes (member count, display names, power levels) already looked up.
 */

type Json = Record<string, unknown>;

/** What a condition may consult besides the event itself. */
export interface EvalContext {
  /** Joined members of the room at the event. */
  memberCount: number;
  /** The evaluated user's display name in the room (for `contains_display_name`). */
  displayName?: string;
  /** The sender's power level and the room's `notifications` levels (for `sender_notification_permission`). */
  senderPowerLevel: number;
  notificationLevels: ReadonlyMap<string, number>;
}

/** One event prepared for many users' rules. */
export interface PreparedEvent {
  event: Json;
  /** Lower-cased code points of `content.body` (when a string), shared by every user's content rules. */
  body?: string[];
}

export function prepareEvent(event: Json): PreparedEvent {
  const content = event.content;
  const body = content && typeof content === 'object' ? (content as Json).body : undefined;
  return { event, body: typeof body === 'string' ? Array.from(body.toLowerCase()) : undefined };
}

// ---- dotted key paths (appendices: "Dot-separated property paths") ----

/** Splits `content.m\.relates_to` into ['content', 'm.relates_to']; `\\` is a backslash, other escapes stay as-is. */
export function parseKeyPath(key: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (c === '\\' && (key[i + 1] === '.' || key[i + 1] === '\\')) {
      cur += key[++i];
    } else if (c === '.') {
      out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  out.push(cur);
  return out;
}

/** The value at a path (own properties only), or undefined. */
export function valueAt(event: Json, path: readonly string[]): unknown {
  let v: unknown = event;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, p)) return undefined;
    v = (v as Json)[p];
  }
  return v;
}

// ---- globs (appendices: "Glob-style matching") ----

const STAR = -1;
const ANY = -2;
/**
 * A glob: lower-cased code points with STAR/ANY markers (consecutive stars collapsed), and the
 * lower-cased text itself when it has no wildcard (a whole-value match is then a comparison).
 */
export interface Glob {
  tokens: (string | number)[];
  literal?: string;
}

export function compileGlob(pattern: string, literal = false): Glob {
  const tokens: (string | number)[] = [];
  for (const ch of pattern.toLowerCase()) {
    if (!literal && ch === '*') {
      if (tokens[tokens.length - 1] !== STAR) tokens.push(STAR);
    } else if (!literal && ch === '?') tokens.push(ANY);
    else tokens.push(ch);
  }
  return tokens.every((t) => typeof t === 'string') ? { tokens, literal: pattern.toLowerCase() } : { tokens };
}

const isWordChar = (c: string | undefined) => c !== undefined && /^[A-Za-z0-9_]$/.test(c);

/**
 * Whether the glob matches `text` (lower-cased code points) entirely, or, with `words`, some
 * substring of it that starts and ends at a word boundary. A Thompson-style simulation: linear in
 * the text for a given pattern, so a hostile pattern cannot make a write backtrack for seconds.
 */
export function globMatches(glob: Glob, text: readonly string[], words: boolean): boolean {
  const g = glob.tokens;
  const m = g.length;
  let cur = new Uint8Array(m + 1);
  let next = new Uint8Array(m + 1);
  const add = (set: Uint8Array, j: number) => {
    for (;;) {
      if (set[j]) return;
      set[j] = 1;
      if (j < m && g[j] === STAR) j++;
      else return;
    }
  };
  const n = text.length;
  for (let i = 0; ; i++) {
    if (i === 0 ? true : words && !isWordChar(text[i - 1])) add(cur, 0);
    if (cur[m] && (i === n || (words && !isWordChar(text[i])))) return true;
    if (i === n) return false;
    const c = text[i]!;
    next.fill(0);
    let any = false;
    for (let j = 0; j < m; j++) {
      if (!cur[j]) continue;
      const tok = g[j];
      if (tok === STAR) add(next, j);
      else if (tok === ANY || tok === c) add(next, j + 1);
      else continue;
      any = true;
    }
    if (!any && !words) return false;
    [cur, next] = [next, cur];
  }
}

// ---- compiled rules ----

type Condition =
  | { kind: 'event_match'; path: string[]; glob: Glob; body: boolean }
  | { kind: 'event_property_is'; path: string[]; value: unknown }
  | { kind: 'event_property_contains'; path: string[]; value: unknown }
  | { kind: 'contains_display_name' }
  | { kind: 'room_member_count'; op: string; n: number }
  | { kind: 'sender_notification_permission'; key: string }
  | { kind: 'never' };

export interface CompiledRule {
  ruleId: string;
  conditions: Condition[];
  actions: PushAction[];
}

/** A user's enabled rules in evaluation order, ready to run. */
export interface CompiledRules {
  rules: CompiledRule[];
  /** Some rule needs the user's display name in the room. */
  needsDisplayName: boolean;
}

const isScalar = (v: unknown) => v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isSafeInteger(v));

function compileCondition(c: Json): Condition {
  const key = typeof c.key === 'string' ? c.key : undefined;
  switch (c.kind) {
    case 'event_match':
      if (key === undefined || typeof c.pattern !== 'string') return { kind: 'never' };
      return { kind: 'event_match', path: parseKeyPath(key), glob: compileGlob(c.pattern), body: key === 'content.body' };
    case 'event_property_is':
    case 'event_property_contains':
      if (key === undefined || !('value' in c) || !isScalar(c.value)) return { kind: 'never' };
      return { kind: c.kind, path: parseKeyPath(key), value: c.value };
    case 'contains_display_name':
      return { kind: 'contains_display_name' };
    case 'room_member_count': {
      const m = typeof c.is === 'string' ? /^(==|<=|>=|<|>)?([0-9]{1,15})$/.exec(c.is) : null;
      return m ? { kind: 'room_member_count', op: m[1] ?? '==', n: Number(m[2]) } : { kind: 'never' };
    }
    case 'sender_notification_permission':
      return key === undefined ? { kind: 'never' } : { kind: 'sender_notification_permission', key };
    default:
      // Unrecognised conditions never match (the rule is then effectively disabled).
      return { kind: 'never' };
  }
}

function compileRule(kind: string, r: PushRule): CompiledRule {
  let conditions: Condition[];
  if (kind === 'content') conditions = [{ kind: 'event_match', path: ['content', 'body'], glob: compileGlob(r.pattern ?? ''), body: true }];
  else if (kind === 'room') conditions = [{ kind: 'event_property_is', path: ['room_id'], value: r.rule_id }];
  else if (kind === 'sender') conditions = [{ kind: 'event_property_is', path: ['sender'], value: r.rule_id }];
  else conditions = (r.conditions ?? []).map(compileCondition);
  return { ruleId: r.rule_id, conditions, actions: r.actions };
}

/** Compiles a user's rule set (disabled rules dropped): override, content, room, sender, underride. */
export function compileRuleset(set: PushRuleset): CompiledRules {
  const rules: CompiledRule[] = [];
  for (const kind of PUSH_RULE_KINDS) for (const r of set[kind]) if (r.enabled) rules.push(compileRule(kind, r));
  return { rules, needsDisplayName: rules.some((r) => r.conditions.some((c) => c.kind === 'contains_display_name')) };
}

function conditionHolds(c: Condition, ev: PreparedEvent, ctx: EvalContext): boolean {
  switch (c.kind) {
    case 'event_match': {
      if (c.body) return ev.body !== undefined && globMatches(c.glob, ev.body, true);
      const v = valueAt(ev.event, c.path);
      if (typeof v !== 'string') return false;
      const lower = v.toLowerCase();
      return c.glob.literal !== undefined ? lower === c.glob.literal : globMatches(c.glob, Array.from(lower), false);
    }
    case 'event_property_is': {
      const v = valueAt(ev.event, c.path);
      return isScalar(v) && v === c.value;
    }
    case 'event_property_contains': {
      const v = valueAt(ev.event, c.path);
      return Array.isArray(v) && v.some((x) => isScalar(x) && x === c.value);
    }
    case 'contains_display_name': {
      if (!ctx.displayName || ev.body === undefined) return false;
      return globMatches(compileGlob(ctx.displayName, true), ev.body, true);
    }
    case 'room_member_count': {
      const n = ctx.memberCount;
      return c.op === '==' ? n === c.n : c.op === '<' ? n < c.n : c.op === '>' ? n > c.n : c.op === '<=' ? n <= c.n : n >= c.n;
    }
    case 'sender_notification_permission':
      // The spec's default for `notifications.room` is 50; other keys get the same.
      return ctx.senderPowerLevel >= (ctx.notificationLevels.get(c.key) ?? 50);
    case 'never':
      return false;
  }
}

/** The actions of the first matching rule (historical actions stripped), or undefined when none matches. */
export function evaluate(rules: CompiledRules, ev: PreparedEvent, ctx: EvalContext): { ruleId: string; actions: PushAction[] } | undefined {
  for (const r of rules.rules) {
    if (r.conditions.every((c) => conditionHolds(c, ev, ctx))) {
      return { ruleId: r.ruleId, actions: r.actions.filter((a) => a !== 'dont_notify' && a !== 'coalesce') };
    }
  }
  return undefined;
}

/** `notify` and the highlight tweak of a list of actions (a highlight tweak without value means true). */
export function actionFlags(actions: readonly PushAction[]): { notify: boolean; highlight: boolean } {
  let notify = false;
  let highlight = false;
  for (const a of actions) {
    if (a === 'notify') notify = true;
    else if (typeof a === 'object' && a.set_tweak === 'highlight') highlight = a.value === undefined ? true : a.value === true;
  }
  return { notify, highlight };
}

/** The tweaks a gateway gets: every set_tweak's value (highlight without one: true). */
export function tweaksOf(actions: readonly PushAction[]): Json {
  const out: Json = {};
  for (const a of actions) {
    if (typeof a === 'object' && typeof a.set_tweak === 'string') out[a.set_tweak] = a.value === undefined && a.set_tweak === 'highlight' ? true : a.value;
  }
  return out;
}
