// Authorization rules of room versions 10 and 11 (services/rooms/auth_rules.ts).
// Every denial is asserted by the rule number in its reason, so a test also fails when the
// event is still denied but by some later rule (i.e. the rule under test stopped working).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  authEventTypesFor,
  checkAuth,
  checkAuthAgainstAuthEvents,
  checkAuthEvents,
  redactionApplies,
  redactsOf,
  type AuthOptions,
  type AuthResult,
} from '../src/services/rooms/auth_rules.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateKey } from '../src/services/rooms/pdu.js';
import { eventBuilder, type EventOpts } from './support/pdus.js';

const ROOM = '!room:a.test';
const ALICE = '@alice:a.test'; // creator, level 100
const AMY = '@amy:a.test'; // on the creator's server
const BOB = '@bob:b.test'; // moderator, level 50
const CAROL = '@carol:c.test'; // joined, level 0
const DAVE = '@dave:d.test'; // outsider
const ERIN = '@erin:e.test'; // joined, level 50

const makeEvent = eventBuilder(ROOM);
const member = (id: string, sender: string, target: string, membership: string, extra: Record<string, unknown> = {}, o: EventOpts = {}) =>
  makeEvent(id, 'm.room.member', sender, { membership, ...extra }, { ...o, state_key: target });
const plEvent = (id: string, sender: string, content: Record<string, unknown>) =>
  makeEvent(id, 'm.room.power_levels', sender, content, { state_key: '' });
const joinRules = (rule: string) => makeEvent(`$jr_${rule}`, 'm.room.join_rules', ALICE, { join_rule: rule }, { state_key: '' });

const create11 = makeEvent('$create', 'm.room.create', ALICE, { room_version: '11' }, { state_key: '', prev: [] });
const create10 = makeEvent('$create', 'm.room.create', ALICE, { room_version: '10', creator: ALICE }, { state_key: '', prev: [] });
const basePl = { users: { [ALICE]: 100, [BOB]: 50, [ERIN]: 50 } };

function stateOf(...events: RoomEvent[]): Map<StateKey, RoomEvent> {
  return new Map(events.map((e) => [stateKey(e.type, e.state_key as string), e] as const));
}
/** A public room: alice created it; bob, carol and erin joined; power levels per `pl`. */
function room(o: { version?: RoomVersionId; pl?: Record<string, unknown> | null; rule?: string | null; extra?: RoomEvent[] } = {}) {
  const create = (o.version ?? '11') === '10' ? create10 : create11;
  const events = [create, member('$m_alice', ALICE, ALICE, 'join')];
  if (o.pl !== null) events.push(plEvent('$pl', ALICE, o.pl ?? basePl));
  if (o.rule !== null) events.push(joinRules(o.rule ?? 'public'));
  for (const u of [BOB, CAROL, ERIN]) events.push(member(`$m_${u.slice(1, u.indexOf(':'))}`, u, u, 'join'));
  return stateOf(...events, ...(o.extra ?? []));
}

function expectResult(r: AuthResult, expected: true | string, name: string) {
  if (expected === true) {
    assert.ok(r.allowed, `${name}: expected allowed, got ${r.allowed ? '' : r.reason}`);
  } else {
    assert.not.ok(r.allowed, `${name}: expected denial by "${expected}"`);
    if (!r.allowed) assert.ok(r.reason.startsWith(expected), `${name}: expected "${expected}", got "${r.reason}"`);
  }
}

type Case = { name: string; event: RoomEvent; state?: Map<StateKey, RoomEvent>; version?: RoomVersionId; options?: AuthOptions; expect: true | string };
function runCases(group: string, cases: Case[]) {
  test(group, () => {
    for (const c of cases) {
      const version = c.version ?? '11';
      expectResult(checkAuth(c.event, c.state ?? room({ version }), version, c.options), c.expect, c.name);
    }
  });
}

// ---- rule 1: m.room.create ----
runCases('rule 1: create events, v10 vs v11', [
  { name: 'v11 create without creator', event: create11, state: new Map(), expect: true },
  { name: 'v10 create with creator', event: create10, state: new Map(), version: '10', expect: true },
  { name: 'v10 create without creator', event: makeEvent('$c', 'm.room.create', ALICE, { room_version: '10' }, { state_key: '', prev: [] }), state: new Map(), version: '10', expect: 'rule 1.4' },
  { name: 'create with prev_events', event: makeEvent('$c', 'm.room.create', ALICE, { room_version: '11' }, { state_key: '', prev: ['$x'] }), state: new Map(), expect: 'rule 1.1' },
  { name: 'room_id domain is not the sender domain', event: makeEvent('$c', 'm.room.create', BOB, { room_version: '11' }, { state_key: '', prev: [] }), state: new Map(), expect: 'rule 1.2' },
  { name: 'unknown room_version', event: makeEvent('$c', 'm.room.create', ALICE, { room_version: '99' }, { state_key: '', prev: [] }), state: new Map(), expect: 'rule 1.3' },
  { name: 'non-string room_version', event: makeEvent('$c', 'm.room.create', ALICE, { room_version: 11 }, { state_key: '', prev: [] }), state: new Map(), expect: 'rule 1.3' },
  { name: 'declared version differs from the rules applied', event: create10, state: new Map(), version: '11', expect: 'm.room.create declares room version "10"' },
  { name: 'no room_version means version 1', event: makeEvent('$c', 'm.room.create', ALICE, {}, { state_key: '', prev: [] }), state: new Map(), expect: 'm.room.create declares room version "1"' },
]);

// ---- rule 2: auth events ----
test('authEventTypesFor follows "Auth events selection"', () => {
  const keys = (e: Parameters<typeof authEventTypesFor>[0]) => authEventTypesFor(e, '11').map((k) => k.replace('\u0000', '|')).sort();
  assert.equal(keys({ type: 'm.room.create', state_key: '', sender: ALICE, content: {} }), []);
  assert.equal(keys({ type: 'm.room.message', sender: BOB, content: {} }), ['m.room.create|', `m.room.member|${BOB}`, 'm.room.power_levels|']);
  assert.equal(keys({ type: 'm.room.member', state_key: CAROL, sender: BOB, content: { membership: 'leave' } }),
    ['m.room.create|', `m.room.member|${BOB}`, `m.room.member|${CAROL}`, 'm.room.power_levels|']);
  assert.equal(keys({ type: 'm.room.member', state_key: DAVE, sender: DAVE, content: { membership: 'knock' } }),
    ['m.room.create|', 'm.room.join_rules|', `m.room.member|${DAVE}`, 'm.room.power_levels|']);
  assert.equal(keys({ type: 'm.room.member', state_key: DAVE, sender: DAVE, content: { membership: 'join', join_authorised_via_users_server: BOB } }),
    ['m.room.create|', 'm.room.join_rules|', `m.room.member|${BOB}`, `m.room.member|${DAVE}`, 'm.room.power_levels|']);
  assert.equal(keys({ type: 'm.room.member', state_key: DAVE, sender: BOB, content: { membership: 'invite', third_party_invite: { signed: { token: 'tok' } } } }),
    ['m.room.create|', 'm.room.join_rules|', `m.room.member|${BOB}`, `m.room.member|${DAVE}`, 'm.room.power_levels|', 'm.room.third_party_invite|tok']);
  // join_authorised_via_users_server only counts for joins.
  assert.equal(keys({ type: 'm.room.member', state_key: BOB, sender: BOB, content: { membership: 'leave', join_authorised_via_users_server: ERIN } }).length, 3);
});

test('rules 2.1-2.5: the auth_events list', () => {
  const pool = new Map<string, RoomEvent>();
  const pl = plEvent('$pl', ALICE, basePl);
  const pl2 = plEvent('$pl2', ALICE, basePl);
  const mBob = member('$m_bob', BOB, BOB, 'join');
  const jr = joinRules('public');
  const foreign = { ...plEvent('$pl_foreign', ALICE, basePl), room_id: '!other:a.test' };
  for (const e of [create11, pl, pl2, mBob, jr, foreign]) pool.set(e.event_id, e);
  const fetch = (id: string) => pool.get(id);
  const msg = (auth: string[]) => makeEvent('$msg', 'm.room.message', BOB, { body: 'hi' }, { auth });
  expectResult(checkAuthEvents(msg(['$create', '$pl', '$m_bob']), fetch, '11'), true, 'valid list');
  expectResult(checkAuthEvents(msg(['$create', '$pl', '$pl2', '$m_bob']), fetch, '11'), 'rule 2.1', 'duplicate type/state_key');
  expectResult(checkAuthEvents(msg(['$create', '$pl', '$pl', '$m_bob']), fetch, '11'), 'rule 2.1', 'same id twice');
  expectResult(checkAuthEvents(msg(['$create', '$pl', '$m_bob', '$jr_public']), fetch, '11'), 'rule 2.2', 'join rules on a message');
  expectResult(checkAuthEvents(msg(['$create', '$pl', '$m_bob']), fetch, '11', (id) => id === '$pl'), 'rule 2.3', 'rejected auth event');
  expectResult(checkAuthEvents(msg(['$pl', '$m_bob']), fetch, '11'), 'rule 2.4', 'no create event');
  expectResult(checkAuthEvents(msg(['$create', '$pl_foreign', '$m_bob']), fetch, '11'), 'rule 2.5', 'auth event from another room');
  expectResult(checkAuthEvents(msg(['$create', '$nope']), fetch, '11'), 'auth event $nope is not available', 'unknown auth event');
  // The combined receipt check: rules 2.x, then the rest against the auth events.
  expectResult(checkAuthAgainstAuthEvents(msg(['$create', '$pl', '$m_bob']), fetch, '11'), true, 'combined, allowed');
  expectResult(checkAuthAgainstAuthEvents(msg(['$create', '$pl']), fetch, '11'), 'rule 5', 'combined: sender membership not cited');
  expectResult(checkAuthAgainstAuthEvents(create11, fetch, '11'), true, 'combined: create');
  // checkAuth itself needs a create event and same-room auth state.
  const noCreate = room();
  noCreate.delete(stateKey('m.room.create', ''));
  expectResult(checkAuth(msg([]), noCreate, '11'), 'rule 2.4', 'state without create');
  expectResult(checkAuth(msg([]), room({ extra: [{ ...member('$m_bob2', BOB, BOB, 'join'), room_id: '!other:a.test' }] }), '11'), 'rule 2.5', 'state from another room');
  const misfiled = room();
  misfiled.set(stateKey('m.room.member', BOB), member('$m_carol2', CAROL, CAROL, 'join'));
  expectResult(checkAuth(msg([]), misfiled, '11'), 'auth state entry', 'state entry under the wrong key');
});

// ---- rule 3: m.federate ----
const unfederated = (version: RoomVersionId) => {
  const c = makeEvent('$create', 'm.room.create', ALICE, version === '10' ? { room_version: '10', creator: ALICE, 'm.federate': false } : { room_version: '11', 'm.federate': false }, { state_key: '', prev: [] });
  return stateOf(c, member('$m_alice', ALICE, ALICE, 'join'), joinRules('public'), member('$m_amy', AMY, AMY, 'join'), member('$m_bob', BOB, BOB, 'join'));
};
runCases('rule 3: m.federate false keeps other servers out', [
  { name: 'same-server message', event: makeEvent('$e', 'm.room.message', AMY, {}), state: unfederated('11'), expect: true },
  { name: 'other-server message', event: makeEvent('$e', 'm.room.message', BOB, {}), state: unfederated('11'), expect: 'rule 3' },
  { name: 'other-server join', event: member('$e', DAVE, DAVE, 'join'), state: unfederated('11'), expect: 'rule 3' },
  { name: 'other-server message (v10)', event: makeEvent('$e', 'm.room.message', BOB, {}), state: unfederated('10'), version: '10', expect: 'rule 3' },
  { name: 'm.federate "false" (a string) is not false', event: makeEvent('$e', 'm.room.message', BOB, {}),
    state: stateOf(makeEvent('$create', 'm.room.create', ALICE, { room_version: '11', 'm.federate': 'false' }, { state_key: '', prev: [] }), member('$m_bob', BOB, BOB, 'join')), expect: true },
]);

// ---- rule 4.1 / 4.2 / 4.8 ----
runCases('rules 4.1, 4.2.1, 4.8: malformed membership events', [
  { name: 'no membership', event: makeEvent('$e', 'm.room.member', DAVE, {}, { state_key: DAVE }), expect: 'rule 4.1' },
  { name: 'no state_key', event: makeEvent('$e', 'm.room.member', DAVE, { membership: 'join' }), expect: 'rule 4.1' },
  { name: 'state_key is not a user ID', event: member('$e', BOB, 'dave', 'invite'), expect: 'rule 4.1' },
  { name: 'unknown membership', event: member('$e', DAVE, DAVE, 'lurk'), expect: 'rule 4.8' },
  { name: 'via claim not signed by that server (any membership)', event: member('$e', BOB, BOB, 'leave', { join_authorised_via_users_server: ERIN }), expect: 'rule 4.2.1' },
  { name: 'via claim signed by that server', event: member('$e', BOB, BOB, 'leave', { join_authorised_via_users_server: ERIN }, { signedBy: ['b.test', 'e.test'] }), expect: true },
  { name: 'via claim that is not a user ID', event: member('$e', BOB, BOB, 'leave', { join_authorised_via_users_server: 42 }), expect: 'rule 4.2.1' },
]);

// ---- rule 4.3: join ----
const restrictedJoin = (extra: Record<string, unknown>, signedBy = ['d.test', 'b.test']) =>
  member('$e', DAVE, DAVE, 'join', extra, { signedBy });
const firstJoin = (user: string) => member('$e', user, user, 'join', {}, { prev: ['$create'] });
const createdByAliceForAmy10 = makeEvent('$create', 'm.room.create', ALICE, { room_version: '10', creator: AMY }, { state_key: '', prev: [] });
runCases('rule 4.3: joins', [
  { name: 'creator first join right after create (v11: create sender)', event: firstJoin(ALICE), state: stateOf(create11), expect: true },
  { name: 'creator first join (v10: content.creator)', event: firstJoin(AMY), state: stateOf(createdByAliceForAmy10), version: '10', expect: true },
  { name: 'v10: create sender is not the creator', event: firstJoin(ALICE), state: stateOf(createdByAliceForAmy10), version: '10', expect: 'rule 4.3.4' },
  { name: 'v11: content.creator is ignored', event: firstJoin(AMY), state: stateOf(makeEvent('$create', 'm.room.create', ALICE, { room_version: '11', creator: AMY }, { state_key: '', prev: [] })), expect: 'rule 4.3.4' },
  { name: 'creator join whose only prev event is not the create', event: member('$e', ALICE, ALICE, 'join', {}, { prev: ['$x'] }), state: stateOf(create11), expect: 'rule 4.3.4' },
  { name: 'creator join not directly after create', event: member('$e', ALICE, ALICE, 'join', {}, { prev: ['$create', '$x'] }), state: stateOf(create11), expect: 'rule 4.3.4' },
  { name: 'public room', event: member('$e', DAVE, DAVE, 'join'), expect: true },
  { name: 'joining for someone else', event: member('$e', BOB, DAVE, 'join'), expect: 'rule 4.3.2' },
  { name: 'banned user, public room', event: member('$e', DAVE, DAVE, 'join'), state: room({ extra: [member('$ban', ALICE, DAVE, 'ban')] }), expect: 'rule 4.3.3' },
  { name: 'invite-only, not invited', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'invite' }), expect: 'rule 4.3.4' },
  { name: 'no join rules event reads as invite', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: null }), expect: 'rule 4.3.4' },
  { name: 'invite-only, invited', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'invite', extra: [member('$inv', BOB, DAVE, 'invite')] }), expect: true },
  { name: 'invite-only, already joined (profile change)', event: member('$e', CAROL, CAROL, 'join', { displayname: 'C' }), state: room({ rule: 'invite' }), expect: true },
  { name: 'knock room, not invited', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'knock' }), expect: 'rule 4.3.4' },
  { name: 'knock room, invited', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'knock', extra: [member('$inv', BOB, DAVE, 'invite')] }), expect: true },
  { name: 'knock room, knocked only', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'knock', extra: [member('$k', DAVE, DAVE, 'knock')] }), expect: 'rule 4.3.4' },
  { name: 'restricted, invited', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'restricted', extra: [member('$inv', BOB, DAVE, 'invite')] }), expect: true },
  { name: 'restricted, no authoriser', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'restricted' }), expect: 'rule 4.3.5.2' },
  { name: 'restricted, joined authoriser who may invite', event: restrictedJoin({ join_authorised_via_users_server: BOB }), state: room({ rule: 'restricted' }), expect: true },
  { name: 'knock_restricted, joined authoriser', event: restrictedJoin({ join_authorised_via_users_server: BOB }), state: room({ rule: 'knock_restricted' }), expect: true },
  { name: 'knock_restricted, invited', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'knock_restricted', extra: [member('$inv', BOB, DAVE, 'invite')] }), expect: true },
  { name: 'restricted, authoriser not joined', event: restrictedJoin({ join_authorised_via_users_server: AMY }, ['d.test', 'a.test']), state: room({ rule: 'restricted' }), expect: 'rule 4.3.5.2' },
  { name: 'restricted, authoriser below invite level', event: restrictedJoin({ join_authorised_via_users_server: CAROL }, ['d.test', 'c.test']),
    state: room({ rule: 'restricted', pl: { ...basePl, invite: 10 } }), expect: 'rule 4.3.5.2' },
  { name: 'restricted, authoriser server did not sign', event: restrictedJoin({ join_authorised_via_users_server: BOB }, ['d.test']), state: room({ rule: 'restricted' }), expect: 'rule 4.2.1' },
  { name: 'restricted, injected verifier says the signature is bad', event: restrictedJoin({ join_authorised_via_users_server: BOB }),
    state: room({ rule: 'restricted' }), options: { isSignedBy: (_e, server) => server !== 'b.test' }, expect: 'rule 4.2.1' },
  { name: 'private join rule', event: member('$e', DAVE, DAVE, 'join'), state: room({ rule: 'private' }), expect: 'rule 4.3.7' },
]);

// ---- rule 4.4: invite ----
const tpiEvent = (sender = BOB) => makeEvent('$tpi', 'm.room.third_party_invite', sender,
  { display_name: 'd', public_key: 'K1', public_keys: [{ public_key: 'K2' }, { nope: 1 }] }, { state_key: 'tok' });
const tpInvite = (signed: unknown, sender = BOB) => member('$e', sender, DAVE, 'invite', { third_party_invite: { display_name: 'd', signed } });
const goodSigned = { mxid: DAVE, token: 'tok', signatures: { 'id.test': { 'ed25519:0': 'sig' } } };
const seenKeys: string[][] = [];
const verifier: AuthOptions = { verifyThirdPartyInvite: (signed, keys) => (seenKeys.push(keys), signed.token === 'tok') };
runCases('rule 4.4: invites', [
  { name: 'moderator invites', event: member('$e', BOB, DAVE, 'invite'), expect: true },
  { name: 'level-0 member invites (invite level 0)', event: member('$e', CAROL, DAVE, 'invite'), expect: true },
  { name: 'below the invite level', event: member('$e', CAROL, DAVE, 'invite'), state: room({ pl: { ...basePl, invite: 10 } }), expect: 'rule 4.4.5' },
  { name: 'inviter not joined', event: member('$e', DAVE, AMY, 'invite'), expect: 'rule 4.4.2' },
  { name: 'invitee already joined', event: member('$e', BOB, CAROL, 'invite'), expect: 'rule 4.4.3' },
  { name: 'invitee banned', event: member('$e', BOB, DAVE, 'invite'), state: room({ extra: [member('$ban', ALICE, DAVE, 'ban')] }), expect: 'rule 4.4.3' },
  { name: '3pid: no verifier configured', event: tpInvite(goodSigned), state: room({ extra: [tpiEvent()] }), expect: 'rule 4.4.1.7' },
  { name: '3pid: verified', event: tpInvite(goodSigned), state: room({ extra: [tpiEvent()] }), options: verifier, expect: true },
  { name: '3pid: signature does not verify', event: tpInvite({ ...goodSigned, token: 'tok', extra: 1 }), state: room({ extra: [tpiEvent()] }),
    options: { verifyThirdPartyInvite: () => false }, expect: 'rule 4.4.1.8' },
  { name: '3pid: invitee banned', event: tpInvite(goodSigned), state: room({ extra: [tpiEvent(), member('$ban', ALICE, DAVE, 'ban')] }), options: verifier, expect: 'rule 4.4.1.1' },
  { name: '3pid: no signed', event: tpInvite(undefined), state: room({ extra: [tpiEvent()] }), options: verifier, expect: 'rule 4.4.1.2' },
  { name: '3pid: no token', event: tpInvite({ mxid: DAVE }), state: room({ extra: [tpiEvent()] }), options: verifier, expect: 'rule 4.4.1.3' },
  { name: '3pid: mxid is not the state_key', event: tpInvite({ ...goodSigned, mxid: AMY }), state: room({ extra: [tpiEvent()] }), options: verifier, expect: 'rule 4.4.1.4' },
  { name: '3pid: no such m.room.third_party_invite', event: tpInvite(goodSigned), options: verifier, expect: 'rule 4.4.1.5' },
  { name: '3pid: someone else sent the m.room.third_party_invite', event: tpInvite(goodSigned), state: room({ extra: [tpiEvent(ERIN)] }), options: verifier, expect: 'rule 4.4.1.6' },
]);
test('rule 4.4.1.7: the verifier sees public_key and every public_keys[].public_key', () => {
  assert.ok(seenKeys.length > 0);
  assert.equal(seenKeys[0], ['K1', 'K2']);
});

// ---- rule 4.5: leave, kick, unban ----
const banned = [member('$ban', ALICE, DAVE, 'ban')];
runCases('rule 4.5: leaving, kicking, unbanning', [
  { name: 'joined member leaves', event: member('$e', CAROL, CAROL, 'leave'), expect: true },
  { name: 'invitee rejects the invite', event: member('$e', DAVE, DAVE, 'leave'), state: room({ extra: [member('$inv', BOB, DAVE, 'invite')] }), expect: true },
  { name: 'knocker withdraws the knock', event: member('$e', DAVE, DAVE, 'leave'), state: room({ rule: 'knock', extra: [member('$k', DAVE, DAVE, 'knock')] }), expect: true },
  { name: 'non-member leaves', event: member('$e', DAVE, DAVE, 'leave'), expect: 'rule 4.5.1' },
  { name: 'banned user unbans themself', event: member('$e', DAVE, DAVE, 'leave'), state: room({ extra: banned }), expect: 'rule 4.5.1' },
  { name: 'admin kicks a level-0 member', event: member('$e', ALICE, CAROL, 'leave'), expect: true },
  { name: 'moderator kicks the admin', event: member('$e', BOB, ALICE, 'leave'), expect: 'rule 4.5.5' },
  { name: 'moderator kicks a peer at the same level', event: member('$e', BOB, ERIN, 'leave'), expect: 'rule 4.5.5' },
  { name: 'level-0 member kicks (kick level 50)', event: member('$e', CAROL, DAVE, 'leave'), expect: 'rule 4.5.5' },
  { name: 'kick below a raised kick level', event: member('$e', BOB, CAROL, 'leave'), state: room({ pl: { ...basePl, kick: 75 } }), expect: 'rule 4.5.5' },
  { name: 'kick below the default kick level (50)', event: member('$e', BOB, CAROL, 'leave'), state: room({ pl: { users: { [ALICE]: 100, [BOB]: 40 } } }), expect: 'rule 4.5.5' },
  { name: 'kicker not joined', event: member('$e', AMY, CAROL, 'leave'), expect: 'rule 4.5.2' },
  { name: 'admin unbans', event: member('$e', ALICE, DAVE, 'leave'), state: room({ extra: banned }), expect: true },
  { name: 'unban needs the ban level, not just kick', event: member('$e', BOB, DAVE, 'leave'), state: room({ pl: { ...basePl, ban: 75, kick: 25 }, extra: banned }), expect: 'rule 4.5.3' },
  { name: 'same moderator may kick (kick 25)', event: member('$e', BOB, CAROL, 'leave'), state: room({ pl: { ...basePl, ban: 75, kick: 25 } }), expect: true },
]);

// ---- rule 4.6: ban ----
runCases('rule 4.6: bans', [
  { name: 'admin bans the moderator', event: member('$e', ALICE, BOB, 'ban'), expect: true },
  { name: 'moderator bans an outsider', event: member('$e', BOB, DAVE, 'ban'), expect: true },
  { name: 'moderator bans the admin', event: member('$e', BOB, ALICE, 'ban'), expect: 'rule 4.6.3' },
  { name: 'moderator bans a peer', event: member('$e', BOB, ERIN, 'ban'), expect: 'rule 4.6.3' },
  { name: 'level-0 member bans', event: member('$e', CAROL, DAVE, 'ban'), expect: 'rule 4.6.3' },
  { name: 'ban below a raised ban level', event: member('$e', BOB, CAROL, 'ban'), state: room({ pl: { ...basePl, ban: 75 } }), expect: 'rule 4.6.3' },
  { name: 'ban below the default ban level (50)', event: member('$e', BOB, CAROL, 'ban'), state: room({ pl: { users: { [ALICE]: 100, [BOB]: 40 } } }), expect: 'rule 4.6.3' },
  { name: 'banner not joined', event: member('$e', AMY, DAVE, 'ban'), expect: 'rule 4.6.1' },
]);

// ---- rule 4.7: knock ----
runCases('rule 4.7: knocks only where the join rule allows them', [
  { name: 'knock on a public room', event: member('$e', DAVE, DAVE, 'knock'), expect: 'rule 4.7.1' },
  { name: 'knock on an invite room', event: member('$e', DAVE, DAVE, 'knock'), state: room({ rule: 'invite' }), expect: 'rule 4.7.1' },
  { name: 'knock on a knock room', event: member('$e', DAVE, DAVE, 'knock'), state: room({ rule: 'knock' }), expect: true },
  { name: 'knock on a knock_restricted room (v10)', event: member('$e', DAVE, DAVE, 'knock'), state: room({ version: '10', rule: 'knock_restricted' }), version: '10', expect: true },
  { name: 'knock for someone else', event: member('$e', BOB, DAVE, 'knock'), state: room({ rule: 'knock' }), expect: 'rule 4.7.2' },
  { name: 'knock while invited', event: member('$e', DAVE, DAVE, 'knock'), state: room({ rule: 'knock', extra: [member('$inv', BOB, DAVE, 'invite')] }), expect: 'rule 4.7.4' },
  { name: 'knock while banned', event: member('$e', DAVE, DAVE, 'knock'), state: room({ rule: 'knock', extra: banned }), expect: 'rule 4.7.4' },
  { name: 'knock while joined', event: member('$e', CAROL, CAROL, 'knock'), state: room({ rule: 'knock' }), expect: 'rule 4.7.4' },
]);

// ---- rules 5-8 ----
const topic = (sender: string, o: EventOpts = {}) => makeEvent('$e', 'm.room.topic', sender, { topic: 't' }, { state_key: '', ...o });
runCases('rules 5-8: membership, third-party invites, required levels, user-owned state', [
  { name: 'message from a non-member', event: makeEvent('$e', 'm.room.message', DAVE, {}), expect: 'rule 5' },
  { name: 'message from an invitee', event: makeEvent('$e', 'm.room.message', DAVE, {}), state: room({ extra: [member('$inv', BOB, DAVE, 'invite')] }), expect: 'rule 5' },
  { name: 'message from a member', event: makeEvent('$e', 'm.room.message', CAROL, {}), expect: true },
  { name: 'third_party_invite event at the invite level', event: makeEvent('$e', 'm.room.third_party_invite', CAROL, {}, { state_key: 'tok' }), expect: true },
  { name: 'third_party_invite below the invite level', event: makeEvent('$e', 'm.room.third_party_invite', CAROL, {}, { state_key: 'tok' }), state: room({ pl: { ...basePl, invite: 5 } }), expect: 'rule 6.1' },
  { name: 'third_party_invite skips rule 8 (allowed by 6.1)', event: makeEvent('$e', 'm.room.third_party_invite', CAROL, {}, { state_key: BOB }), expect: true },
  { name: 'state event below state_default', event: topic(CAROL), expect: 'rule 7' },
  { name: 'state event at state_default', event: topic(BOB), expect: true },
  { name: 'events entry overrides state_default', event: topic(CAROL), state: room({ pl: { ...basePl, events: { 'm.room.topic': 0 } } }), expect: true },
  { name: 'events entry for a message type', event: makeEvent('$e', 'm.room.message', CAROL, {}), state: room({ pl: { ...basePl, events: { 'm.room.message': 10 } } }), expect: 'rule 7' },
  { name: 'events_default', event: makeEvent('$e', 'm.custom', CAROL, {}), state: room({ pl: { ...basePl, events_default: 1 } }), expect: 'rule 7' },
  { name: 'event type named like an Object.prototype member', event: makeEvent('$e', 'constructor', CAROL, {}), expect: true },
  { name: 'users_default applies to users without an entry', event: topic(CAROL), state: room({ pl: { ...basePl, users_default: 50 } }), expect: true },
  { name: 'users entry beats users_default', event: topic(CAROL), state: room({ pl: { users: { ...basePl.users, [CAROL]: 0 }, users_default: 50 } }), expect: 'rule 7' },
  { name: 'no power levels: creator has 100', event: topic(ALICE), state: room({ pl: null }), expect: true },
  { name: 'no power levels: others have 0 and state needs 50', event: topic(BOB), state: room({ pl: null }), expect: 'rule 7' },
  { name: 'no power levels: messages need 0', event: makeEvent('$e', 'm.room.message', CAROL, {}), state: room({ pl: null }), expect: true },
  { name: 'v10 no power levels: content.creator has 100', event: topic(AMY), version: '10',
    state: stateOf(createdByAliceForAmy10, member('$m_amy', AMY, AMY, 'join'), member('$m_alice', ALICE, ALICE, 'join')), expect: true },
  { name: 'v10 no power levels: create sender is not special', event: topic(ALICE), version: '10',
    state: stateOf(createdByAliceForAmy10, member('$m_amy', AMY, AMY, 'join'), member('$m_alice', ALICE, ALICE, 'join')), expect: 'rule 7' },
  { name: "state_key is another user's ID", event: makeEvent('$e', 'm.custom.state', BOB, {}, { state_key: CAROL }), expect: 'rule 8' },
  { name: "state_key is the sender's ID", event: makeEvent('$e', 'm.custom.state', BOB, {}, { state_key: BOB }), expect: true },
  { name: 'redaction needs only the m.room.redaction level, not redact', event: makeEvent('$e', 'm.room.redaction', CAROL, { redacts: '$x' }), expect: true },
  { name: 'redaction with an events entry', event: makeEvent('$e', 'm.room.redaction', BOB, { redacts: '$x' }), state: room({ pl: { ...basePl, events: { 'm.room.redaction': 60 } } }), expect: 'rule 7' },
]);

// ---- rule 9: power levels ----
const pl = (sender: string, content: Record<string, unknown>) => plEvent('$e', sender, content);
const bothVersions = (c: Case): Case[] => [c, { ...c, name: `${c.name} (v10)`, version: '10', state: c.state ?? room({ version: '10' }) }];
runCases('rule 9: power levels content must be integers (v10+)', [
  ...bothVersions({ name: 'string user level "50"', event: pl(ALICE, { users: { [ALICE]: 100, [BOB]: '50' } }), expect: 'rule 9.3' }),
  ...bothVersions({ name: 'string ban "50"', event: pl(ALICE, { ...basePl, ban: '50' }), expect: 'rule 9.1' }),
  ...bothVersions({ name: 'fractional kick', event: pl(ALICE, { ...basePl, kick: 50.5 }), expect: 'rule 9.1' }),
  ...bothVersions({ name: 'null users_default', event: pl(ALICE, { ...basePl, users_default: null }), expect: 'rule 9.1' }),
  ...bothVersions({ name: 'string events entry', event: pl(ALICE, { ...basePl, events: { 'm.room.name': '50' } }), expect: 'rule 9.2' }),
  ...bothVersions({ name: 'events not an object', event: pl(ALICE, { ...basePl, events: [] }), expect: 'rule 9.2' }),
  ...bothVersions({ name: 'string notifications entry', event: pl(ALICE, { ...basePl, notifications: { room: '50' } }), expect: 'rule 9.2' }),
  ...bothVersions({ name: 'users key is not a user ID', event: pl(ALICE, { users: { [ALICE]: 100, bob: 1 } }), expect: 'rule 9.3' }),
  ...bothVersions({ name: 'users key without a server name', event: pl(ALICE, { users: { [ALICE]: 100, '@bob:': 1 } }), expect: 'rule 9.3' }),
  ...bothVersions({ name: 'users not an object', event: pl(ALICE, { users: null }), expect: 'rule 9.3' }),
  ...bothVersions({ name: 'integers everywhere', event: pl(ALICE, { ...basePl, ban: 60, events: { 'm.room.name': 50 }, notifications: { room: 50 } }), expect: true }),
]);
runCases('rule 9: changing power levels', [
  { name: 'first power levels event (creator at 100 implicitly)', event: pl(ALICE, { users: { [ALICE]: 100, [CAROL]: 100 } }), state: room({ pl: null }), expect: true },
  { name: 'moderator raises themself above their level', event: pl(BOB, { users: { ...basePl.users, [BOB]: 60 } }), expect: 'rule 9.9' },
  { name: 'moderator promotes someone to their own level', event: pl(BOB, { users: { ...basePl.users, [CAROL]: 50 } }), expect: true },
  { name: 'moderator promotes someone above their level', event: pl(BOB, { users: { ...basePl.users, [CAROL]: 51 } }), expect: 'rule 9.9' },
  { name: 'moderator demotes a peer at their level', event: pl(BOB, { users: { ...basePl.users, [ERIN]: 0 } }), expect: 'rule 9.8' },
  { name: 'moderator removes the admin entry', event: pl(BOB, { users: { [BOB]: 50, [ERIN]: 50 } }), expect: 'rule 9.8' },
  { name: 'moderator demotes themself', event: pl(BOB, { users: { ...basePl.users, [BOB]: 10 } }), expect: true },
  { name: 'admin demotes the moderator', event: pl(ALICE, { users: { [ALICE]: 100 } }), expect: true },
  { name: 'moderator lowers ban from 50 to 40', event: pl(BOB, { ...basePl, ban: 40 }), state: room({ pl: { ...basePl, ban: 50 } }), expect: true },
  { name: 'moderator changes a level currently above theirs', event: pl(BOB, { ...basePl, kick: 50 }), state: room({ pl: { ...basePl, kick: 75 } }), expect: 'rule 9.5.1' },
  { name: 'moderator removes a level currently above theirs', event: pl(BOB, { ...basePl, events: { 'm.room.power_levels': 50 } }),
    state: room({ pl: { ...basePl, state_default: 75, events: { 'm.room.power_levels': 50 } } }), expect: 'rule 9.5.1' },
  { name: 'moderator adds a level above theirs', event: pl(BOB, { ...basePl, invite: 60 }), expect: 'rule 9.5.2' },
  { name: 'moderator adds events entry above their level', event: pl(BOB, { ...basePl, events: { 'm.room.topic': 60 } }), expect: 'rule 9.7' },
  { name: 'moderator adds events entry at their level', event: pl(BOB, { ...basePl, events: { 'm.room.topic': 50 } }), expect: true },
  { name: 'moderator changes an events entry above their level', event: pl(BOB, { ...basePl, events: { 'm.room.topic': 0 } }),
    state: room({ pl: { ...basePl, events: { 'm.room.topic': 75 } } }), expect: 'rule 9.6' },
  { name: 'moderator adds a notifications entry above their level', event: pl(BOB, { ...basePl, notifications: { room: 60 } }), expect: 'rule 9.7' },
  { name: 'moderator keeps an entry above their level unchanged', event: pl(BOB, { ...basePl, events: { 'm.room.tombstone': 100, 'm.room.topic': 10 } }),
    state: room({ pl: { ...basePl, events: { 'm.room.tombstone': 100 } } }), expect: true },
  { name: 'level-0 member cannot send power levels at all', event: pl(CAROL, { ...basePl }), expect: 'rule 7' },
]);

// ---- redactions: auth vs application ----
test('redactsOf reads top-level redacts in v10 and content.redacts in v11', () => {
  const v10 = makeEvent('$r', 'm.room.redaction', BOB, {}, { redacts: '$x' });
  const v11 = makeEvent('$r', 'm.room.redaction', BOB, { redacts: '$x' });
  assert.is(redactsOf(v10, '10'), '$x');
  assert.is(redactsOf(v10, '11'), undefined);
  assert.is(redactsOf(v11, '11'), '$x');
  assert.is(redactsOf(v11, '10'), undefined);
});

test('redactionApplies: redact level, or the same server as the original sender', () => {
  const state = room();
  const byCarol = makeEvent('$orig', 'm.room.message', CAROL, {});
  const byAlice = makeEvent('$orig', 'm.room.message', ALICE, {});
  const redaction = (sender: string) => makeEvent('$r', 'm.room.redaction', sender, { redacts: '$orig' });
  assert.ok(redactionApplies(redaction(BOB), byCarol, state, '11'), 'moderator at the redact level');
  assert.ok(redactionApplies(redaction(CAROL), byCarol, state, '11'), 'own event');
  assert.not.ok(redactionApplies(redaction(CAROL), byAlice, state, '11'), 'other server, level 0');
  assert.ok(redactionApplies(redaction(AMY), byAlice, state, '11'), 'same server as the original sender');
  assert.not.ok(redactionApplies(redaction(BOB), byCarol, room({ pl: { ...basePl, redact: 60 } }), '11'), 'below a raised redact level');
  assert.not.ok(redactionApplies(makeEvent('$r', 'm.room.redaction', BOB, { redacts: '$other' }), byCarol, state, '11'), 'targets another event');
  assert.ok(redactionApplies(makeEvent('$r', 'm.room.redaction', BOB, {}, { redacts: '$orig' }), byCarol, room({ version: '10' }), '10'), 'v10 top-level redacts');
});

test.run();
