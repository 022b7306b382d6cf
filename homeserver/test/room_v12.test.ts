// Room version 12 (services/rooms/room_v12.ts, auth_rules.ts, state_res_v21.ts, create.ts,
// upgrade.ts): room ids derived from the create event, the create event implied instead of
// listed in auth_events, creators with an infinite level, and state resolution v2.1.
// Auth denials are asserted by their v12 rule number (as in auth_rules.test.ts). Invite/knock
// stripped state of v12 rooms carries the whole create PDU (spec v1.16).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  authEventsSelection,
  authEventTypesFor,
  checkAuth,
  checkAuthAgainstAuthEvents,
  checkAuthEvents,
  type AuthResult,
} from '../src/services/rooms/auth_rules.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateKey, type StateMap } from '../src/services/rooms/pdu.js';
import { resolveState } from '../src/services/rooms/state_res.js';
import { conflictedSubgraph } from '../src/services/rooms/state_res_v21.js';
import { userPowerLevel } from '../src/services/rooms/power_levels.js';
import { eventIdFor } from '../src/services/rooms/event_format.js';
import { authChainOver, eventBuilder, type EventOpts } from './support/pdus.js';
import { api, assertError, createRoom, enc, invite, join, ok, putState, send, stateMap, suiteWithUsers } from './support/rooms.js';

const C12 = '$createTwelve';
const ROOM = '!createTwelve';
const ALICE = '@alice:a.test'; // creator
const ANNA = '@anna:b.test'; // additional creator
const BOB = '@bob:b.test'; // level 100, not a creator
const CAROL = '@carol:c.test'; // level 0
const DAVE = '@dave:d.test'; // outsider

const ev = eventBuilder(ROOM);
const member = (id: string, sender: string, target: string, membership: string, o: EventOpts = {}) =>
  ev(id, 'm.room.member', sender, { membership }, { ...o, state_key: target });
const pl = (id: string, sender: string, content: Record<string, unknown>) => ev(id, 'm.room.power_levels', sender, content, { state_key: '' });
/** The create event as the server holds it in memory: room_id attached, `!` + its hash. */
const create12 = ev(C12, 'm.room.create', ALICE, { room_version: '12', additional_creators: [ANNA] }, { state_key: '', prev: [] });
const basePl = { users: { [BOB]: 100 }, events: { 'm.room.power_levels': 100 } };

function stateOf(...events: RoomEvent[]): Map<StateKey, RoomEvent> {
  return new Map(events.map((e) => [stateKey(e.type, e.state_key as string), e] as const));
}
function room(o: { pl?: Record<string, unknown> | null; create?: RoomEvent } = {}) {
  const events = [o.create ?? create12, member('$m_alice', ALICE, ALICE, 'join')];
  if (o.pl !== null) events.push(pl('$pl', ALICE, o.pl ?? basePl));
  events.push(ev('$jr', 'm.room.join_rules', ALICE, { join_rule: 'public' }, { state_key: '' }));
  for (const u of [ANNA, BOB, CAROL]) events.push(member(`$m_${u.slice(1, u.indexOf(':'))}`, u, u, 'join'));
  return stateOf(...events);
}
function expectResult(r: AuthResult, expected: true | string, name: string) {
  if (expected === true) {
    assert.ok(r.allowed, `${name}: expected allowed, got ${r.allowed ? '' : r.reason}`);
  } else {
    assert.not.ok(r.allowed, `${name}: expected denial by "${expected}"`);
    if (!r.allowed) assert.ok(r.reason.startsWith(expected + ':') || r.reason.startsWith(expected + ' '), `${name}: expected "${expected}", got "${r.reason}"`);
  }
}
type Case = { name: string; event: RoomEvent; state?: Map<StateKey, RoomEvent>; expect: true | string };
function runCases(group: string, cases: Case[]) {
  test(group, () => {
    for (const c of cases) expectResult(checkAuth(c.event, c.state ?? room(), '12'), c.expect, c.name);
  });
}

// ---- rule 1: the create event ----
runCases('v12 rule 1: create events (no room_id, additional_creators)', [
  { name: 'create with the implied room id', event: create12, state: new Map(), expect: true },
  { name: 'create that came with a room_id of its own', event: { ...create12, room_id: '!other:a.test' }, state: new Map(), expect: 'rule 1.2' },
  { name: 'create with prev_events', event: { ...create12, prev_events: ['$x'] }, state: new Map(), expect: 'rule 1.1' },
  { name: 'unknown room_version', event: { ...create12, content: { room_version: '99' } }, state: new Map(), expect: 'rule 1.3' },
  { name: 'additional_creators not an array', event: { ...create12, content: { room_version: '12', additional_creators: ANNA } }, state: new Map(), expect: 'rule 1.4' },
  { name: 'additional_creators with a non-user id', event: { ...create12, content: { room_version: '12', additional_creators: [ANNA, 'anna'] } }, state: new Map(), expect: 'rule 1.4' },
  { name: 'additional_creators with a non-string', event: { ...create12, content: { room_version: '12', additional_creators: [5] } }, state: new Map(), expect: 'rule 1.4' },
  { name: 'empty additional_creators', event: { ...create12, content: { room_version: '12', additional_creators: [] } }, state: new Map(), expect: true },
  // A cross-server create is fine in v12: the room id has no server name to match.
  { name: 'no domain check on the room id', event: { ...create12, sender: BOB }, state: new Map(), expect: true },
]);

// ---- rule 2: the room id names the create event ----
runCases('v12 rule 2: the room id must be the create event id', [
  { name: 'message in the room', event: ev('$msg', 'm.room.message', CAROL, { body: 'hi' }), expect: true },
  { name: 'room id derived from another event', event: ev('$msg', 'm.room.message', CAROL, { body: 'hi' }, { room: '!someOtherHash' }), state: stateOf(...[...room().values()].map((e) => ({ ...e, room_id: '!someOtherHash' }))), expect: 'rule 2' },
  { name: 'room id with a server name (v11 style)', event: ev('$msg', 'm.room.message', CAROL, { body: 'hi' }, { room: '!createTwelve:a.test' }), state: stateOf(...[...room().values()].map((e) => ({ ...e, room_id: '!createTwelve:a.test' }))), expect: 'rule 2' },
  { name: 'no create event at all', event: ev('$msg', 'm.room.message', CAROL, { body: 'hi' }), state: new Map([...room()].filter(([k]) => k !== stateKey('m.room.create', ''))), expect: 'rule 2' },
]);

test('v12 rule 3: the auth_events list leaves the create event out', () => {
  const pool = new Map<string, RoomEvent>();
  const plEv = pl('$pl', ALICE, basePl);
  const pl2 = pl('$pl2', ALICE, basePl);
  const mCarol = member('$m_carol', CAROL, CAROL, 'join');
  const foreign = { ...pl('$pl_foreign', ALICE, basePl), room_id: '!elsewhere' };
  for (const e of [create12, plEv, pl2, mCarol, foreign]) pool.set(e.event_id, e);
  const fetch = (id: string) => pool.get(id);
  const msg = (auth: string[], room = ROOM) => ev('$msg', 'm.room.message', CAROL, { body: 'hi' }, { auth, room });
  expectResult(checkAuthEvents(msg(['$pl', '$m_carol']), fetch, '12'), true, 'valid list without the create event');
  expectResult(checkAuthEvents(msg([C12, '$pl', '$m_carol']), fetch, '12'), 'rule 3.2', 'the create event listed');
  expectResult(checkAuthEvents(msg(['$pl', '$pl2', '$m_carol']), fetch, '12'), 'rule 3.1', 'duplicate power levels');
  expectResult(checkAuthEvents(msg(['$pl', '$m_carol']), fetch, '12', (id) => id === '$pl'), 'rule 3.3', 'rejected auth event');
  expectResult(checkAuthEvents(msg(['$pl_foreign', '$m_carol']), fetch, '12'), 'rule 3.5', 'auth event of another room');
  expectResult(checkAuthEvents(msg(['$pl', '$m_carol'], '!unknownCreate'), fetch, '12'), 'rule 2', 'room id names no known event');
  expectResult(checkAuthEvents(msg(['$pl', '$m_carol']), fetch, '12', (id) => id === C12), 'rule 2', 'the create event was rejected');
  // The whole receipt check finds the create event from the room id.
  expectResult(checkAuthAgainstAuthEvents(msg(['$pl', '$m_carol']), fetch, '12'), true, 'combined, allowed');
  expectResult(checkAuthAgainstAuthEvents(msg(['$pl']), fetch, '12'), 'rule 6', 'combined: the sender membership not cited (v11 rule 5)');
  // The v11 rule is untouched: there the create event must be listed.
  const v11Create = { ...create12, event_id: '$c11', room_id: '!r:a.test', content: { room_version: '11' } };
  pool.set('$c11', v11Create);
  const m11 = { ...mCarol, event_id: '$m11', room_id: '!r:a.test' };
  pool.set('$m11', m11);
  expectResult(checkAuthEvents(ev('$x', 'm.room.message', CAROL, {}, { auth: ['$m11'], room: '!r:a.test' }), fetch, '11'), 'rule 2.4', 'v11 needs the create event');
  expectResult(checkAuthEvents(ev('$x', 'm.room.message', CAROL, {}, { auth: ['$c11', '$m11'], room: '!r:a.test' }), fetch, '11'), true, 'v11 with it');
});

test('auth events selection: v12 leaves m.room.create out, the rules still read it', () => {
  const draft = { type: 'm.room.member', state_key: CAROL, sender: CAROL, content: { membership: 'join' } };
  const keys = (k: StateKey[]) => k.map((x) => x.replace('\u0000', '|')).sort();
  assert.not.ok(keys(authEventsSelection(draft, '12')).includes('m.room.create|'));
  assert.ok(keys(authEventsSelection(draft, '11')).includes('m.room.create|'));
  assert.ok(keys(authEventTypesFor(draft, '12')).includes('m.room.create|'));
  assert.equal(keys(authEventsSelection(draft, '12')), ['m.room.join_rules|', `m.room.member|${CAROL}`, 'm.room.power_levels|']);
});

// ---- creators: infinite level, not listed in power levels ----
runCases('v12 rule 10.4: power levels may not list a creator', [
  { name: 'creator raises bob', event: pl('$pl2', ALICE, { users: { [BOB]: 100, [CAROL]: 50 } }), expect: true },
  { name: 'the create sender listed', event: pl('$pl2', ALICE, { users: { [BOB]: 100, [ALICE]: 100 } }), expect: 'rule 10.4' },
  { name: 'an additional creator listed', event: pl('$pl2', ALICE, { users: { [BOB]: 100, [ANNA]: 0 } }), expect: 'rule 10.4' },
  { name: 'shape problems come first (10.3)', event: pl('$pl2', ALICE, { users: { [ALICE]: 'x' } }), expect: 'rule 10.3' },
  { name: 'the first power levels event too', event: pl('$pl2', ALICE, { users: { [ALICE]: 100 } }), state: room({ pl: null }), expect: 'rule 10.4' },
]);

runCases('v12 creators have an infinite level', [
  { name: 'creator demotes bob (100) to 0', event: pl('$pl2', ALICE, { users: { [BOB]: 0 } }), expect: true },
  { name: 'additional creator gives bob the largest integer', event: pl('$pl2', ANNA, { users: { [BOB]: Number.MAX_SAFE_INTEGER } }), expect: true },
  { name: 'bob (100) cannot raise carol above himself', event: pl('$pl2', BOB, { users: { [BOB]: 100, [CAROL]: 101 } }), expect: 'rule 10.10' },
  { name: 'creator kicks bob (100)', event: member('$k', ALICE, BOB, 'leave'), expect: true },
  { name: 'additional creator bans bob (100)', event: member('$b', ANNA, BOB, 'ban'), expect: true },
  { name: 'bob (100) cannot kick the creator', event: member('$k', BOB, ALICE, 'leave'), expect: 'rule 5.5.5' },
  { name: 'bob (100) cannot ban an additional creator', event: member('$b', BOB, ANNA, 'ban'), expect: 'rule 5.6.3' },
  { name: 'a creator cannot kick another creator', event: member('$k', ANNA, ALICE, 'leave'), expect: 'rule 5.5.5' },
  { name: 'creator sends at a level of 1e15', event: ev('$s', 'org.example.high', ALICE, {}, { state_key: '' }), state: room({ pl: { ...basePl, events: { 'org.example.high': 1e15 } } }), expect: true },
  { name: 'bob (100) cannot', event: ev('$s', 'org.example.high', BOB, {}, { state_key: '' }), state: room({ pl: { ...basePl, events: { 'org.example.high': 1e15 } } }), expect: 'rule 8' },
  { name: 'without power levels: additional creator sends state', event: ev('$s', 'm.room.topic', ANNA, { topic: 't' }, { state_key: '' }), state: room({ pl: null }), expect: true },
  { name: 'without power levels: carol cannot', event: ev('$s', 'm.room.topic', CAROL, { topic: 't' }, { state_key: '' }), state: room({ pl: null }), expect: 'rule 8' },
  { name: 'creator invites at an invite level of 1e15', event: member('$i', ALICE, DAVE, 'invite'), state: room({ pl: { ...basePl, invite: 1e15 } }), expect: true },
  { name: 'the creator joins first after the create event', event: member('$j', ALICE, ALICE, 'join', { prev: [C12] }), state: stateOf(create12), expect: true },
  { name: 'an additional creator does not get that first join', event: member('$j', ANNA, ANNA, 'join', { prev: [C12] }), state: stateOf(create12), expect: 'rule 5.3.4' }, // no join rules: read as invite
  { name: 'outsider sends a message (v11 rule 5)', event: ev('$m', 'm.room.message', DAVE, {}), expect: 'rule 6' },
]);

test('userPowerLevel: creators are infinite in v12 only', () => {
  const plEv = pl('$pl', ALICE, { users: { [BOB]: 100 } });
  assert.is(userPowerLevel(ALICE, plEv, create12, '12'), Infinity);
  assert.is(userPowerLevel(ANNA, plEv, create12, '12'), Infinity);
  assert.is(userPowerLevel(BOB, plEv, create12, '12'), 100);
  assert.is(userPowerLevel(CAROL, undefined, create12, '12'), 0);
  const create11 = { ...create12, content: { room_version: '11', additional_creators: [ANNA] } };
  assert.is(userPowerLevel(ALICE, plEv, create11, '11'), 0, 'v11: the power levels decide');
  assert.is(userPowerLevel(ANNA, undefined, create11, '11'), 0, 'v11: additional_creators means nothing');
});

// ---- state resolution v2.1 ----
/** A room graph of either version: v12 leaves the create event out of auth_events and derives the room id. */
class Graph {
  readonly events = new Map<string, RoomEvent>();
  readonly stateAfter = new Map<string, StateMap>();
  private ts = 0;
  constructor(readonly version: RoomVersionId) {}
  get roomId() {
    return this.version === '12' ? '!g12create' : '!g:hs.test';
  }
  readonly fetch = (id: string) => this.events.get(id);
  readonly authChain = authChainOver(this.events);
  resolve(sets: StateMap[]): StateMap {
    return resolveState(this.version, sets, this.fetch, this.authChain);
  }
  add(id: string, sender: string, type: string, sk: string | undefined, content: Record<string, unknown>, prev: string[]): RoomEvent {
    const isCreate = type === 'm.room.create';
    const eventId = isCreate && this.version === '12' ? '$g12create' : id;
    const before: StateMap = prev.length === 0 ? new Map() : new Map(this.stateAfter.get(prev[0] as string));
    const draft = { type, sender, content, ...(sk !== undefined ? { state_key: sk } : {}) };
    const auth = authEventsSelection(draft, this.version).flatMap((k) => before.get(k) ?? []);
    const event: RoomEvent = {
      ...draft, event_id: eventId, room_id: this.roomId, prev_events: prev, auth_events: auth, depth: 1,
      hashes: { sha256: '' }, origin_server_ts: this.ts++, signatures: { 'hs.test': { 'ed25519:a': 's' } },
    };
    const r = checkAuthAgainstAuthEvents(event, (x) => (x === eventId ? undefined : this.fetch(x)), this.version);
    if (!r.allowed) throw new Error(`scenario event ${id} is not allowed: ${r.reason}`);
    this.events.set(eventId, event);
    const after = new Map(before);
    if (sk !== undefined) after.set(stateKey(type, sk), eventId);
    this.stateAfter.set(eventId, after);
    return event;
  }
  createId() {
    return this.version === '12' ? '$g12create' : '$create';
  }
}
const PL_KEY = stateKey('m.room.power_levels', '');
const JR_KEY = stateKey('m.room.join_rules', '');
const A = '@alice:hs.test';
const B = '@bob:hs.test';
const C = '@charlie:hs.test';

/** Linear history: alice creates; bob and charlie join; alice promotes bob; bob promotes charlie; charlie sets the topic. */
function promotionChain(version: RoomVersionId) {
  const g = new Graph(version);
  const users = (extra: Record<string, number>) => ({ users: version === '12' ? extra : { [A]: 100, ...extra }, events: { 'm.room.power_levels': 100 } });
  g.add('$create', A, 'm.room.create', '', { room_version: version }, []);
  g.add('$ja', A, 'm.room.member', A, { membership: 'join' }, [g.createId()]);
  g.add('$pl1', A, 'm.room.power_levels', '', users({ [B]: 50 }), ['$ja']);
  g.add('$jr', A, 'm.room.join_rules', '', { join_rule: 'public' }, ['$pl1']);
  g.add('$jb', B, 'm.room.member', B, { membership: 'join' }, ['$jr']);
  g.add('$jc', C, 'm.room.member', C, { membership: 'join' }, ['$jb']);
  g.add('$pl2', A, 'm.room.power_levels', '', users({ [B]: 100 }), ['$jc']);
  g.add('$pl3', B, 'm.room.power_levels', '', users({ [B]: 100, [C]: 50 }), ['$pl2']);
  g.add('$topic', C, 'm.room.topic', '', { topic: 'by charlie' }, ['$pl3']);
  return g;
}

test('state res v2.1: the conflicted state subgraph replays the events between conflicted ones', () => {
  // One state set is correct (power levels $pl3); the other, from a faulty partial sync, names
  // the older $pl1 while citing $pl3 through charlie's topic. Only $pl1 and $pl3 conflict; the
  // auth difference is empty, so v2 never replays $pl2 and $pl3 fails against $pl1.
  const results = new Map<RoomVersionId, string | undefined>();
  for (const version of ['11', '12'] as const) {
    const g = promotionChain(version);
    const good = g.stateAfter.get('$topic')!;
    const stale = new Map(good).set(PL_KEY, '$pl1');
    assert.equal(g.authChain(good.values()), g.authChain(stale.values()), `${version}: no auth difference`);
    results.set(version, g.resolve([good, stale]).get(PL_KEY));
    if (version === '12') {
      // Every auth path from $pl3 down to $pl1: through $pl2, and through bob's join (and the join rules it cites).
      assert.equal([...conflictedSubgraph(new Set(['$pl1', '$pl3']), g.fetch)].sort(), ['$jb', '$jr', '$pl1', '$pl2', '$pl3']);
    }
  }
  assert.is(results.get('11'), '$pl1', 'v2 resets to the old power levels');
  assert.is(results.get('12'), '$pl3', 'v2.1 keeps the current power levels');
});

test('state res v2.1: the first auth checks start from an empty state, not the unconflicted one', () => {
  // Alice set the join rules twice and then left (a self-leave: not a power event). A stale
  // state set names the first join rules; both sets agree that alice left. v2 replays both join
  // rules on top of "alice left" and drops both; v2.1 replays them on their own auth events.
  const results = new Map<RoomVersionId, string | undefined>();
  for (const version of ['11', '12'] as const) {
    const g = promotionChain(version);
    g.add('$jr2', A, 'm.room.join_rules', '', { join_rule: 'invite' }, ['$topic']);
    g.add('$la', A, 'm.room.member', A, { membership: 'leave' }, ['$jr2']);
    const good = g.stateAfter.get('$la')!;
    const stale = new Map(good).set(JR_KEY, '$jr');
    results.set(version, g.resolve([good, stale]).get(JR_KEY));
  }
  assert.is(results.get('11'), undefined, 'v2 loses the join rules');
  assert.is(results.get('12'), '$jr2', 'v2.1 keeps the latest join rules');
});

test('state res v2.1: the create event is found from the room id; unconflicted state still wins', () => {
  const g = promotionChain('12');
  // Two concurrent topics: ordinary mainline resolution, with the create event in no auth_events.
  g.add('$t1', C, 'm.room.topic', '', { topic: 'one' }, ['$topic']);
  const s1 = g.stateAfter.get('$t1')!;
  g.add('$t2', B, 'm.room.topic', '', { topic: 'two' }, ['$topic']);
  const s2 = g.stateAfter.get('$t2')!;
  const resolved = g.resolve([s1, s2]);
  assert.is(resolved.get(stateKey('m.room.topic', '')), '$t2', 'the later topic wins (same mainline)');
  assert.is(resolved.get(stateKey('m.room.create', '')), '$g12create');
  assert.is(resolved.get(PL_KEY), '$pl3');
  for (const e of g.events.values()) assert.not.ok(e.auth_events.includes('$g12create'), `${e.event_id} does not cite the create event`);
});

// ---- the server: createRoom, permissions, upgrades ----
const t = suiteWithUsers('room version 12 rooms', ['alice', 'anna', 'bob', 'carol']);

async function pduOf(ctx: any, eventId: string): Promise<any> {
  const rows = await ctx.s.hs.deps.db.query('select json from events where event_id = ?', [eventId]);
  return JSON.parse(rows[0].json as string);
}

t('/capabilities offers room version 12 as stable', async (ctx) => {
  const caps = ok(await api(ctx.s, ctx.alice, 'GET', '/capabilities')).capabilities['m.room_versions'];
  assert.is(caps.available['12'], 'stable');
  assert.is(caps.default, '11');
});

t('createRoom v12: the room id is the create event hash, the create event has no room_id and is in no auth_events', async (ctx) => {
  const { s, alice, bob } = ctx;
  const roomId = await createRoom(s, alice, { room_version: '12', preset: 'public_chat', name: 'Twelve' });
  assert.not.ok(roomId.includes(':'), 'no server name in a v12 room id');
  const state = await stateMap(s, alice, roomId);
  const create = state.get('m.room.create|');
  assert.is(create.content.room_version, '12');
  assert.is(roomId, `!${create.event_id.slice(1)}`);
  const createPdu = await pduOf(ctx, create.event_id);
  assert.not.ok('room_id' in createPdu, 'the stored create PDU has no room_id');
  assert.is(`!${eventIdFor(createPdu, '12').slice(1)}`, roomId, 'room id = ! + reference hash of the create PDU');
  // Default power levels: the creator is not listed; the tombstone needs more than state_default.
  const plContent = state.get('m.room.power_levels|').content;
  assert.equal(plContent.users, {});
  assert.ok(plContent.events['m.room.tombstone'] > plContent.state_default);
  for (const [key, e] of state) {
    if (key === 'm.room.create|') continue;
    const pdu = await pduOf(ctx, e.event_id);
    assert.is(pdu.room_id, roomId);
    assert.not.ok(pdu.auth_events.includes(create.event_id), `${key} does not cite the create event`);
  }
  // The room works: bob joins, both talk; clients see the room id on every event, the create event included.
  await join(s, bob, roomId);
  await send(s, bob, roomId, 'hello twelve');
  const msgs = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=20`));
  assert.ok(msgs.chunk.some((e: any) => e.content?.body === 'hello twelve'));
  const createSeen = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/event/${enc(create.event_id)}`));
  assert.is(createSeen.room_id, roomId);
});

t('creators cannot be demoted or kicked by others; additional_creators; power levels naming a creator are refused', async (ctx) => {
  const { s, alice, anna, bob, carol } = ctx;
  assertError(await api(s, alice, 'POST', '/createRoom', { room_version: '12', creation_content: { additional_creators: 'nope' } }), 400, 'M_BAD_JSON', 'bad additional_creators');
  assertError(await api(s, alice, 'POST', '/createRoom', { room_version: '12', power_level_content_override: { users: { [alice.user_id]: 100 } } }), 400, 'M_INVALID_ROOM_STATE', 'override naming the creator');
  const roomId = await createRoom(s, alice, {
    room_version: '12',
    preset: 'public_chat',
    creation_content: { additional_creators: [anna.user_id] },
    power_level_content_override: { users: { [bob.user_id]: 100 } },
  });
  const create = (await stateMap(s, alice, roomId)).get('m.room.create|');
  assert.equal(create.content.additional_creators, [anna.user_id]);
  for (const u of [anna, bob, carol]) await join(s, u, roomId);
  // bob (100, an admin) can neither kick a creator nor list one in power levels.
  assertError(await api(s, bob, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: alice.user_id }), 403, 'M_FORBIDDEN', 'bob kicks alice');
  assertError(await api(s, bob, 'POST', `/rooms/${enc(roomId)}/ban`, { user_id: anna.user_id }), 403, 'M_FORBIDDEN', 'bob bans anna');
  const current = (await stateMap(s, alice, roomId)).get('m.room.power_levels|').content;
  assertError(await api(s, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...current, users: { ...current.users, [alice.user_id]: 0 } }), 403, 'M_FORBIDDEN', 'bob demotes alice');
  assertError(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...current, users: { ...current.users, [anna.user_id]: 100 } }), 403, 'M_FORBIDDEN', 'even a creator cannot list a creator');
  // The additional creator outranks bob: demotes him, then kicks him; the creator redacts anyone's event.
  await putState(s, anna, roomId, 'm.room.power_levels', '', { ...current, users: { [bob.user_id]: 0 } });
  const bobMsg = await send(s, bob, roomId, 'to be redacted');
  ok(await api(s, anna, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: bob.user_id }), 'anna kicks bob');
  ok(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(bobMsg)}/r1`, {}), 'alice redacts');
  // A creator cannot kick another creator (equal, infinite levels).
  assertError(await api(s, anna, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: alice.user_id }), 403, 'M_FORBIDDEN', 'anna kicks alice');
  // carol (0) cannot invite when the invite level is raised; alice can at any level.
  await putState(s, alice, roomId, 'm.room.power_levels', '', { ...current, users: {}, invite: 1_000_000 });
  await putState(s, alice, roomId, 'm.room.join_rules', '', { join_rule: 'invite' });
  assertError(await api(s, carol, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.user_id }), 403, 'M_FORBIDDEN', 'carol invites');
  await invite(s, alice, roomId, bob.user_id);
});

t('trusted_private_chat in v12: invitees become additional creators, not power level entries', async (ctx) => {
  const { s, alice, bob } = ctx;
  const roomId = await createRoom(s, alice, { room_version: '12', preset: 'trusted_private_chat', invite: [bob.user_id], is_direct: true });
  const state = await stateMap(s, alice, roomId);
  assert.equal(state.get('m.room.create|').content.additional_creators, [bob.user_id]);
  assert.equal(state.get('m.room.power_levels|').content.users, {});
});

t('upgrade v11 → v12: the upgrader and additional_creators are the creators; power levels lose them', async (ctx) => {
  const { s, alice, anna, bob, carol } = ctx;
  const oldId = await createRoom(s, alice, { room_version: '11', preset: 'public_chat', name: 'Old', power_level_content_override: { users: { [alice.user_id]: 100, [bob.user_id]: 100, [anna.user_id]: 50, [carol.user_id]: 20 } } });
  for (const u of [anna, bob, carol]) await join(s, u, oldId);
  assertError(await api(s, bob, 'POST', `/rooms/${enc(oldId)}/upgrade`, { new_version: '12', additional_creators: 'x' }), 400, 'M_BAD_JSON');
  const res = ok(await api(s, bob, 'POST', `/rooms/${enc(oldId)}/upgrade`, { new_version: '12', additional_creators: [anna.user_id] }), 'upgrade');
  const newId = res.replacement_room as string;
  const fresh = await stateMap(s, bob, newId);
  const create = fresh.get('m.room.create|');
  assert.is(newId, `!${create.event_id.slice(1)}`, 'the new room id is the create event hash');
  assert.is(create.sender, bob.user_id);
  assert.equal(create.content.additional_creators, [anna.user_id]);
  assert.is(create.content.predecessor.room_id, oldId);
  assert.equal(fresh.get('m.room.power_levels|').content.users, { [alice.user_id]: 100, [carol.user_id]: 20 }, 'creators removed, others kept');
  assert.is(fresh.get('m.room.name|').content.name, 'Old');
  assert.is((await stateMap(s, carol, oldId)).get('m.room.tombstone|').content.replacement_room, newId);
  // The new room works; alice (100) cannot kick bob (a creator) there any more.
  await join(s, alice, newId);
  await join(s, anna, newId);
  assertError(await api(s, alice, 'POST', `/rooms/${enc(newId)}/kick`, { user_id: bob.user_id }), 403, 'M_FORBIDDEN');
  // v12 → v12 again: additional creators are not copied.
  const again = ok(await api(s, bob, 'POST', `/rooms/${enc(newId)}/upgrade`, { new_version: '12' })).replacement_room as string;
  const createAgain = (await stateMap(s, bob, again)).get('m.room.create|');
  assert.is(createAgain.content.additional_creators, undefined);
});

t('invite and knock state in v12 (spec v1.16 stripped state): the create event whole, its hash the room id; v11 stripped', async (ctx) => {
  const { s, alice, carol } = ctx;
  const roomId = await createRoom(s, alice, { room_version: '12', preset: 'private_chat', name: 'Stripped twelve' });
  await invite(s, alice, roomId, carol.user_id);
  const invState = ok(await api(s, carol, 'GET', '/sync?timeout=0')).rooms.invite[roomId].invite_state.events as any[];
  const create = invState.find((e) => e.type === 'm.room.create');
  assert.ok(create.signatures && create.hashes, 'the create event is the whole PDU');
  assert.not.ok('room_id' in create);
  assert.is(`!${eventIdFor(create, '12').slice(1)}`, roomId);
  // Everything else is stripped: type, state_key, sender, content only.
  for (const e of invState.filter((x) => x.type !== 'm.room.create')) assert.equal(Object.keys(e).sort(), ['content', 'sender', 'state_key', 'type'], e.type);
  assert.ok(invState.some((e) => e.type === 'm.room.name' && e.content.name === 'Stripped twelve'));
  ok(await api(s, carol, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'carol declines');
  // Knock state likewise.
  const knockRoom = await createRoom(s, alice, { room_version: '12', preset: 'private_chat', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
  ok(await api(s, carol, 'POST', `/knock/${enc(knockRoom)}`, {}), 'carol knocks');
  const knockState = ok(await api(s, carol, 'GET', '/sync?timeout=0')).rooms.knock[knockRoom].knock_state.events as any[];
  const kCreate = knockState.find((e) => e.type === 'm.room.create');
  assert.is(`!${eventIdFor(kCreate, '12').slice(1)}`, knockRoom);
  // Before v12 the create event stays stripped (it is required all the same).
  const v11 = await createRoom(s, alice, { room_version: '11', preset: 'private_chat' });
  await invite(s, alice, v11, carol.user_id);
  const v11State = ok(await api(s, carol, 'GET', '/sync?timeout=0')).rooms.invite[v11].invite_state.events as any[];
  assert.equal(Object.keys(v11State.find((e) => e.type === 'm.room.create')).sort(), ['content', 'sender', 'state_key', 'type']);
});

test.run();
t.run();
