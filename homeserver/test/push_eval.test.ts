// Push rule evaluation (spec: "Push Rules", "Conditions", "Predefined Rules"), pure: every condition
// kind as a table (event_match globs and dotted keys with escapes, the content.body word-boundary
// case, event_property_is/contains, contains_display_name, room_member_count operators,
// sender_notification_permission, unknown kinds), and the server-default rule set deciding the
// spec's examples (master, notices, invites, member events, mentions, room mentions needing power,
// tombstone, reaction, server ACL, edits, calls, one-to-one, encrypted, plain messages).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { actionFlags, compileGlob, compileRuleset, evaluate, globMatches, parseKeyPath, prepareEvent, tweaksOf, type EvalContext } from '../src/services/push/conditions.js';
import { defaultPushRules, type PushRuleset } from '../src/services/push_rules.js';

const ME = '@me:hearth.test';
const ctx = (o: Partial<EvalContext> = {}): EvalContext => ({ memberCount: 5, senderPowerLevel: 0, notificationLevels: new Map(), ...o });
const msg = (content: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: 'm.room.message',
  sender: '@other:hearth.test',
  room_id: '!r:hearth.test',
  event_id: '$e',
  content,
  ...extra,
});

/** A rule set with only this one override rule (so the table tests one condition at a time). */
function only(conditions: Record<string, unknown>[]): PushRuleset {
  return { override: [{ rule_id: 'x', default: false, enabled: true, conditions, actions: ['notify'] }], content: [], room: [], sender: [], underride: [] };
}
const holds = (cond: Record<string, unknown>, ev: Record<string, unknown>, c = ctx()) => evaluate(compileRuleset(only([cond])), prepareEvent(ev), c) !== undefined;

const t = suite('push rule evaluation');

t('dotted key paths: escapes per the appendix', () => {
  assert.equal(parseKeyPath('content.body'), ['content', 'body']);
  assert.equal(parseKeyPath('content.m\\.relates_to.rel_type'), ['content', 'm.relates_to', 'rel_type']);
  assert.equal(parseKeyPath('content.m\\\\foo'), ['content', 'm\\foo']);
  assert.equal(parseKeyPath('content.a\\xb'), ['content', 'a\\xb'], 'other escapes stay as-is');
});

t('globs: * and ?, case-insensitive, whole value; content.body at word boundaries', () => {
  const whole = (p: string, v: string) => globMatches(compileGlob(p), Array.from(v.toLowerCase()), false);
  const words = (p: string, v: string) => globMatches(compileGlob(p), Array.from(v.toLowerCase()), true);
  const table: [string, string, boolean][] = [
    ['lunc?*', 'Lunch plans', true],
    ['lunc?*', 'LUNCH', true],
    ['lunc?*', ' lunch', false],
    ['lunc?*', 'lunc', false],
    ['m.notice', 'm.notice', true],
    ['m.notice', 'm.noticeX', false],
    ['*', '', true],
    ['a*b*c', 'aXXbYYc', true],
    ['a*b*c', 'aXXbYY', false],
  ];
  for (const [p, v, want] of table) assert.is(whole(p, v), want, `${p} vs ${JSON.stringify(v)}`);
  const bodyTable: [string, string, boolean][] = [
    ['ex*ple', 'An example event.', true],
    ['ex*ple', 'exple', true],
    ['ex*ple', 'An exciting triple-whammy', true],
    ['ex*ple', 'Anexample', false],
    ['cake', 'I like cakes', false],
    ['cake', 'cake!', true],
    ['cake', 'CAKE time', true],
    ['b?b', 'a bob_ x', false],
  ];
  for (const [p, v, want] of bodyTable) assert.is(words(p, v), want, `body ${p} vs ${JSON.stringify(v)}`);
  // A hostile pattern over a long body still answers (no exponential backtracking).
  assert.is(words('*a*a*a*a*a*a*a*a*b', 'a'.repeat(20_000)), false);
});

t('event_match: string values only, absent keys never match (even *)', () => {
  assert.ok(holds({ kind: 'event_match', key: 'content.msgtype', pattern: 'm.*' }, msg({ msgtype: 'm.text' })));
  assert.not.ok(holds({ kind: 'event_match', key: 'content.topic', pattern: '*' }, msg({})));
  assert.not.ok(holds({ kind: 'event_match', key: 'content.n', pattern: '*' }, msg({ n: 5 })));
  assert.ok(holds({ kind: 'event_match', key: 'content.m\\.x', pattern: 'y' }, msg({ 'm.x': 'y' })), 'escaped dot');
  assert.not.ok(holds({ kind: 'event_match', key: 'content.m.x', pattern: 'y' }, msg({ 'm.x': 'y' })), 'unescaped dot is nesting');
  assert.ok(holds({ kind: 'event_match', key: 'content.body', pattern: 'hello' }, msg({ body: 'Well, HELLO there' })), 'body: a word inside');
  assert.not.ok(holds({ kind: 'event_match', key: 'content.other', pattern: 'hello' }, msg({ other: 'Well, hello there' })), 'other keys: whole value');
});

t('event_property_is / event_property_contains: exact scalar values, no casts', () => {
  const create = { type: 'm.room.create', content: { 'm.federate': true, n: 1, s: 'a', z: null, list: ['#a:x', 1, true, null, { o: 1 }] } };
  assert.ok(holds({ kind: 'event_property_is', key: 'content.m\\.federate', value: true }, create));
  assert.not.ok(holds({ kind: 'event_property_is', key: 'content.m\\.federate', value: 'true' }, create));
  assert.not.ok(holds({ kind: 'event_property_is', key: 'content.n', value: true }, create), '1 is not true');
  assert.ok(holds({ kind: 'event_property_is', key: 'content.z', value: null }, create));
  assert.not.ok(holds({ kind: 'event_property_is', key: 'content.absent', value: null }, create), 'absent is not null');
  assert.not.ok(holds({ kind: 'event_property_is', key: 'content.list', value: '#a:x' }, create), 'arrays are not scalars');
  for (const v of ['#a:x', 1, true, null]) assert.ok(holds({ kind: 'event_property_contains', key: 'content.list', value: v }, create), `contains ${v}`);
  assert.not.ok(holds({ kind: 'event_property_contains', key: 'content.list', value: ':x' }, create), 'partial values do not match');
  assert.not.ok(holds({ kind: 'event_property_contains', key: 'content.s', value: 'a' }, create), 'not an array');
});

t('contains_display_name, room_member_count, sender_notification_permission, unknown kinds', () => {
  const dn = { kind: 'contains_display_name' };
  assert.ok(holds(dn, msg({ body: 'hey Alice Smith, look' }), ctx({ displayName: 'alice smith' })));
  assert.not.ok(holds(dn, msg({ body: 'hey AliceSmithers' }), ctx({ displayName: 'Alice' })), 'word boundary');
  assert.not.ok(holds(dn, msg({ body: 'hey Alice' }), ctx()), 'no display name');
  assert.ok(holds(dn, msg({ body: 'is a*b here' }), ctx({ displayName: 'a*b' })), 'display name taken literally');
  assert.not.ok(holds(dn, msg({ body: 'is aXb here' }), ctx({ displayName: 'a*b' })), 'no glob in display names');
  const count = (is: string, n: number) => holds({ kind: 'room_member_count', is }, msg({}), ctx({ memberCount: n }));
  const table: [string, number, boolean][] = [
    ['2', 2, true], ['2', 3, false], ['==2', 2, true], ['<3', 2, true], ['<3', 3, false], ['>3', 4, true], ['>3', 3, false],
    ['<=3', 3, true], ['<=3', 4, false], ['>=3', 3, true], ['>=3', 2, false], ['x3', 3, false],
  ];
  for (const [is, n, want] of table) assert.is(count(is, n), want, `is ${is} with ${n}`);
  const perm = { kind: 'sender_notification_permission', key: 'room' };
  assert.not.ok(holds(perm, msg({}), ctx({ senderPowerLevel: 49 })), 'default room level 50');
  assert.ok(holds(perm, msg({}), ctx({ senderPowerLevel: 50 })));
  assert.ok(holds(perm, msg({}), ctx({ senderPowerLevel: 10, notificationLevels: new Map([['room', 10]]) })));
  assert.not.ok(holds({ kind: 'org.example.unknown' }, msg({})), 'unknown kinds never match');
  assert.not.ok(holds({ kind: 'event_match', key: 'type' }, msg({})), 'malformed conditions never match');
  assert.ok(evaluate(compileRuleset(only([])), prepareEvent(msg({})), ctx()) !== undefined, 'no conditions: always matches');
});

t('actions: notify, tweaks, highlight default true, historical actions ignored', () => {
  assert.equal(actionFlags(['notify', { set_tweak: 'highlight' }]), { notify: true, highlight: true });
  assert.equal(actionFlags(['notify', { set_tweak: 'highlight', value: false }]), { notify: true, highlight: false });
  assert.equal(actionFlags([{ set_tweak: 'sound', value: 'default' }]), { notify: false, highlight: false });
  assert.equal(tweaksOf(['notify', { set_tweak: 'sound', value: 'ring' }, { set_tweak: 'highlight' }]), { sound: 'ring', highlight: true });
  const legacy: PushRuleset = { ...only([]), override: [{ rule_id: 'l', default: false, enabled: true, conditions: [], actions: ['dont_notify', 'coalesce'] }] };
  assert.equal(evaluate(compileRuleset(legacy), prepareEvent(msg({})), ctx())?.actions, []);
});

t('server-default rules decide the spec cases', () => {
  const defaults = defaultPushRules(ME);
  const rules = compileRuleset(defaults);
  const run = (ev: Record<string, unknown>, c = ctx()) => {
    const out = evaluate(rules, prepareEvent(ev), c);
    return out ? { rule: out.ruleId, ...actionFlags(out.actions) } : undefined;
  };
  const table: [string, Record<string, unknown>, EvalContext, string, boolean, boolean][] = [
    ['plain message', msg({ msgtype: 'm.text', body: 'hi' }), ctx(), '.m.rule.message', true, false],
    ['notice', msg({ msgtype: 'm.notice', body: 'bot' }), ctx(), '.m.rule.suppress_notices', false, false],
    ['user mention', msg({ body: 'hi', 'm.mentions': { user_ids: [ME] } }), ctx(), '.m.rule.is_user_mention', true, true],
    ['other user mentioned', msg({ body: 'hi', 'm.mentions': { user_ids: ['@x:y'] } }), ctx(), '.m.rule.message', true, false],
    ['room mention with power', msg({ body: '@room', 'm.mentions': { room: true } }), ctx({ senderPowerLevel: 50 }), '.m.rule.is_room_mention', true, true],
    ['room mention without power', msg({ body: '@room', 'm.mentions': { room: true } }), ctx({ senderPowerLevel: 0 }), '.m.rule.message', true, false],
    ['invite for me', { type: 'm.room.member', state_key: ME, sender: '@o:x', content: { membership: 'invite' } }, ctx(), '.m.rule.invite_for_me', true, false],
    ['other member event', { type: 'm.room.member', state_key: '@o:x', sender: '@o:x', content: { membership: 'join' } }, ctx(), '.m.rule.member_event', false, false],
    ['tombstone', { type: 'm.room.tombstone', state_key: '', sender: '@o:x', content: { body: 'moved' } }, ctx(), '.m.rule.tombstone', true, true],
    ['reaction', { type: 'm.reaction', sender: '@o:x', content: { 'm.relates_to': { rel_type: 'm.annotation', event_id: '$x', key: '👍' } } }, ctx(), '.m.rule.reaction', false, false],
    ['server acl', { type: 'm.room.server_acl', state_key: '', sender: '@o:x', content: {} }, ctx(), '.m.rule.room.server_acl', false, false],
    ['edit', msg({ body: '* fix', 'm.relates_to': { rel_type: 'm.replace', event_id: '$x' } }), ctx(), '.m.rule.suppress_edits', false, false],
    ['call invite', { type: 'm.call.invite', sender: '@o:x', content: {} }, ctx(), '.m.rule.call', true, false],
    ['one-to-one message', msg({ body: 'hi' }), ctx({ memberCount: 2 }), '.m.rule.room_one_to_one', true, false],
    ['one-to-one encrypted', { type: 'm.room.encrypted', sender: '@o:x', content: {} }, ctx({ memberCount: 2 }), '.m.rule.encrypted_room_one_to_one', true, false],
    ['encrypted in a group', { type: 'm.room.encrypted', sender: '@o:x', content: {} }, ctx(), '.m.rule.encrypted', true, false],
  ];
  for (const [what, ev, c, rule, notify, highlight] of table) assert.equal(run(ev, c), { rule, notify, highlight }, what);
  assert.is(run({ type: 'm.room.topic', state_key: '', sender: '@o:x', content: { topic: 't' } }), undefined, 'nothing matches a topic change');

  // The master rule, once enabled, silences everything (it comes before user rules too).
  const master = structuredClone(defaults);
  master.override[0]!.enabled = true;
  assert.equal(evaluate(compileRuleset(master), prepareEvent(msg({ body: 'x', 'm.mentions': { user_ids: [ME] } })), ctx())?.ruleId, '.m.rule.master');
  // User rules: content (word match on body), room and sender rules come before underrides.
  const user = structuredClone(defaults);
  user.content.push({ rule_id: 'cake', default: false, enabled: true, pattern: 'cake', actions: ['notify', { set_tweak: 'highlight' }] });
  user.room.push({ rule_id: '!quiet:hearth.test', default: false, enabled: true, actions: [] });
  user.sender.push({ rule_id: '@loud:hearth.test', default: false, enabled: true, actions: ['notify', { set_tweak: 'sound', value: 'x' }] });
  const ur = compileRuleset(user);
  assert.is(evaluate(ur, prepareEvent(msg({ body: 'Cake time' })), ctx())?.ruleId, 'cake');
  assert.is(evaluate(ur, prepareEvent(msg({ body: 'hi' }, { room_id: '!quiet:hearth.test' })), ctx())?.ruleId, '!quiet:hearth.test');
  assert.is(evaluate(ur, prepareEvent(msg({ body: 'hi' }, { sender: '@loud:hearth.test' })), ctx())?.ruleId, '@loud:hearth.test');
  user.content[0]!.enabled = false;
  assert.is(evaluate(compileRuleset(user), prepareEvent(msg({ body: 'Cake time' })), ctx())?.ruleId, '.m.rule.message', 'disabled rules never match');
});

t.run();
