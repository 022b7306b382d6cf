import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, type Response } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, assertError, createRoom, enc, ok, type User } from './support/rooms.js';
import { asTestServer, currentStateMap, eventRow, eventually, inviteAndJoin, startClusterWithUsers, type FederationCluster, type FederationTestServer, remoteError } from './support/federation.js';
import { signRequest } from '../src/services/federation/x_matrix.js';
import { eventIdFor, verifyEventSignature } from '../src/services/rooms/event_format.js';
import type { RoomVersionId } from '../src/services/rooms/pdu.js';

/**
 * Restricted rooms across servers (server-server API "Restricted rooms"), the deprecated v1
 * send_join / send_leave / invite, and the resident side of partial-state joins (omit_members).
 * A hosts the space S and the room R (restricted to S, invite level 50); C is in R but (at first)
 * not in S; B's users join.
 */
type Ctx = {
  cluster: FederationCluster;
  a: FederationTestServer;
  b: FederationTestServer;
  c: FederationTestServer;
  alice: User;
  olive: User;
  bob: User;
  mallory: User;
  dan: User;
  carol: User;
  space: string;
  room: string;
};
const t = suite<Ctx>('federation: restricted rooms, v1 membership endpoints, omit_members');

const restrictedTo = (rule: string, ...roomIds: string[]) => ({
  type: 'm.room.join_rules',
  state_key: '',
  content: { join_rule: rule, allow: roomIds.map((room_id) => ({ type: 'm.room_membership', room_id })) },
});

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b', 'hs-c'], { alice: 'hs-a', olive: 'hs-a', bob: 'hs-b', mallory: 'hs-b', dan: 'hs-b', carol: 'hs-c' });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'], c: servers['hs-c'] }, users);
  const A = asTestServer(ctx.a);
  ctx.space = await createRoom(A, ctx.alice, { preset: 'public_chat', creation_content: { type: 'm.space' } });
  ctx.room = await createRoom(A, ctx.alice, { preset: 'private_chat', initial_state: [restrictedTo('restricted', ctx.space)], power_level_content_override: { invite: 50 } });
  // C is in R (invited) but not in S.
  await inviteAndJoin(ctx.a, ctx.alice, ctx.c, ctx.carol, ctx.room);
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

const fed = (s: FederationTestServer) => s.hs.deps.services.federation;


/** A signed federation request from `from` straight into `to`'s app: for answers the client refuses (JSON arrays). */
function signedRequest(from: FederationTestServer, to: FederationTestServer, method: string, uri: string, body?: Record<string, unknown>): Promise<Response> {
  const authorization = signRequest(from.hs.deps.services.rooms.signingKey, { method, uri, destination: to.serverName, ...(body ? { content: body as never } : {}) });
  return to.request(method, uri, { headers: { authorization }, body });
}

/** make_<membership> from `from` to `to` for `userId`, then the event as `from` signs it. */
async function makeSigned(from: FederationTestServer, to: FederationTestServer, membership: 'join' | 'leave', roomId: string, userId: string) {
  const res = await fed(from).client.request({
    destination: to.serverName,
    method: 'GET',
    path: `/_matrix/federation/v1/make_${membership}/${enc(roomId)}/${enc(userId)}`,
    query: membership === 'join' ? { ver: ['10', '11'] } : undefined,
  });
  const tpl = res.event as Record<string, any>;
  const version = res.room_version as RoomVersionId;
  const pdu = { room_id: roomId, sender: userId, type: 'm.room.member', state_key: userId, content: tpl.content, prev_events: tpl.prev_events, auth_events: tpl.auth_events, depth: tpl.depth, origin_server_ts: Date.now() };
  const { event, json } = from.hs.deps.services.rooms.signingKey.build(pdu, version);
  return { id: event.event_id, pdu: JSON.parse(json) as Record<string, any>, version };
}

const roomVersion = async (s: FederationTestServer, roomId: string) =>
  (await s.hs.deps.db.query<{ room_version: RoomVersionId }>('select room_version from rooms where room_id = ?', [roomId]))[0]!.room_version;

/** A member event on `on`'s extremities with the given auth events from its current state, signed by `signer`. */
async function buildOn(on: FederationTestServer, signer: FederationTestServer, roomId: string, ev: { sender: string; state_key: string; content: Record<string, unknown> }, authKeys: [string, string][], version: RoomVersionId) {
  const db = on.hs.deps.db;
  const prev = (await db.query<{ event_id: string }>('select event_id from forward_extremities where room_id = ?', [roomId])).map((r) => r.event_id);
  const depth = Number((await db.query<{ d: string }>('select max(depth) as d from events where event_id in (?)', [prev]))[0]!.d);
  const st = await currentStateMap(on, roomId);
  const pdu = { room_id: roomId, type: 'm.room.member', ...ev, prev_events: prev, auth_events: authKeys.map(([t, k]) => st.get(`${t}|${k}`)!), depth: depth + 1, origin_server_ts: Date.now() };
  const { event, json } = signer.hs.deps.services.rooms.signingKey.build(pdu, version);
  return { id: event.event_id, pdu: JSON.parse(json) as Record<string, any> };
}

const memberOn = async (s: FederationTestServer, u: User, roomId: string, userId: string) => {
  const res = await api(asTestServer(s), u, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}?format=event`);
  return res.status === 200 ? res.body : undefined;
};
const signedBy = (s: FederationTestServer, pdu: Record<string, unknown>, version: RoomVersionId) => {
  const key = s.hs.deps.services.rooms.signingKey;
  return verifyEventSignature(pdu, version, s.serverName, key.keyId, key.publicKeyBase64);
};

t('make_join: 403 for a user in no allow room, M_UNABLE_TO_AUTHORISE_JOIN from a server not in the allow room', async ({ a, b, c, mallory, room }) => {
  const refused = await remoteError(fed(b).client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/make_join/${enc(room)}/${enc(mallory.user_id)}`, query: { ver: ['10', '11'] } }));
  assert.is(refused.status, 403);
  assert.is(refused.errcode, 'M_FORBIDDEN');
  const unable = await remoteError(fed(b).client.request({ destination: c.serverName, method: 'GET', path: `/_matrix/federation/v1/make_join/${enc(room)}/${enc(mallory.user_id)}`, query: { ver: ['10', '11'] } }));
  assert.is(unable.status, 400);
  assert.is(unable.errcode, 'M_UNABLE_TO_AUTHORISE_JOIN');
  // Through the client API: mallory (in no allow room) gets A's 403.
  assertError(await api(asTestServer(b), mallory, 'POST', `/join/${enc(room)}?server_name=${enc(a.serverName)}`, {}), 403, 'M_FORBIDDEN', 'mallory joins R');
});

t('a member of the space joins through C then A: A vouches and signs; every server holds the signed join', async ({ a, b, c, alice, bob, space, room }) => {
  await inviteAndJoin(a, alice, b, bob, space, { invite: false });
  c.federationRequests.length = 0;
  // C (in R, not in S) is asked first: it cannot judge, so B goes on to A.
  ok(await api(asTestServer(b), bob, 'POST', `/join/${enc(room)}?server_name=${enc(c.serverName)}&server_name=${enc(a.serverName)}`, {}), 'bob joins R');
  assert.ok(c.federationRequests.some((r) => r.url.startsWith(`/_matrix/federation/v1/make_join/${enc(room)}`)), 'C was asked first');

  const onA = await memberOn(a, alice, room, bob.user_id);
  assert.is(onA.content.membership, 'join');
  assert.is(onA.content.join_authorised_via_users_server, alice.user_id, 'alice (power 100) may invite');
  const version = await roomVersion(a, room);
  for (const s of [a, b]) {
    const row = await eventRow(s, onA.event_id);
    assert.is(row.rejected, null, s.label);
    assert.ok(signedBy(a, row.json, version), `${s.label}'s copy carries A's valid signature`);
    assert.ok(signedBy(b, row.json, version), `${s.label}'s copy carries B's valid signature`);
  }
  // C got the join from A and accepted it (it checks A's signature too).
  await eventually(async () => {
    const rows = await c.hs.deps.db.query<{ rejected_reason: string | null }>('select rejected_reason from events where event_id = ?', [onA.event_id]);
    return rows.length === 1 && rows[0]!.rejected_reason === null;
  }, 'C accepts the restricted join');
});

t('M_UNABLE_TO_GRANT_JOIN from a server that sees the membership but has nobody who may invite; the joiner moves on', async ({ a, b, c, alice, carol, dan, space }) => {
  // R2: like R, and B is not in it (a server already in the room joins its users locally).
  const room2 = await createRoom(asTestServer(a), alice, { preset: 'private_chat', initial_state: [restrictedTo('restricted', space)], power_level_content_override: { invite: 50 } });
  await inviteAndJoin(a, alice, c, carol, room2);
  await inviteAndJoin(a, alice, c, carol, space, { invite: false });
  await inviteAndJoin(a, alice, b, dan, space, { invite: false });
  await eventually(async () => (await c.hs.deps.db.query('select 1 from current_state where room_id = ? and state_key = ? and membership = ?', [space, dan.user_id, 'join'])).length === 1, 'C sees dan in the space');
  const unable = await remoteError(fed(b).client.request({ destination: c.serverName, method: 'GET', path: `/_matrix/federation/v1/make_join/${enc(room2)}/${enc(dan.user_id)}`, query: { ver: ['10', '11'] } }));
  assert.is(unable.status, 400);
  assert.is(unable.errcode, 'M_UNABLE_TO_GRANT_JOIN');
  c.federationRequests.length = 0;
  ok(await api(asTestServer(b), dan, 'POST', `/join/${enc(room2)}?server_name=${enc(c.serverName)}&server_name=${enc(a.serverName)}`, {}), 'dan joins R2');
  assert.ok(c.federationRequests.some((r) => r.url.startsWith(`/_matrix/federation/v1/make_join/${enc(room2)}`)), 'C was asked first');
  assert.is((await memberOn(a, alice, room2, dan.user_id)).content.join_authorised_via_users_server, alice.user_id);
});

t('send_join re-checks the allow rooms before A signs: a forged claim of alice vouching for mallory is refused', async ({ a, b, alice, mallory, room }) => {
  const version = await roomVersion(a, room);
  // A well-formed join with every auth event the rules need: only the claim is false.
  const forged = await buildOn(a, b, room, { sender: mallory.user_id, state_key: mallory.user_id, content: { membership: 'join', join_authorised_via_users_server: alice.user_id } }, [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.join_rules', ''], ['m.room.member', alice.user_id]], version);
  const res = await signedRequest(b, a, 'PUT', `/_matrix/federation/v2/send_join/${enc(room)}/${enc(forged.id)}`, forged.pdu);
  assertError(res, 403, 'M_FORBIDDEN', 'mallory claims alice vouches');
  assert.is(await memberOn(a, alice, room, mallory.user_id), undefined);
});

t('v1 send_join, send_leave and invite answer [200, {...}]', async ({ a, b, alice }) => {
  const A = asTestServer(a);
  const pub = await createRoom(A, alice, { preset: 'public_chat', name: 'v1 room' });
  const joiner = `@ivy:${b.serverName}`;
  const j = await makeSigned(b, a, 'join', pub, joiner);
  const joined = await signedRequest(b, a, 'PUT', `/_matrix/federation/v1/send_join/${enc(pub)}/${enc(j.id)}`, j.pdu);
  assert.is(joined.status, 200, JSON.stringify(joined.body));
  assert.ok(Array.isArray(joined.body) && joined.body.length === 2, 'an array of two');
  assert.is(joined.body[0], 200);
  const answer = joined.body[1];
  assert.ok(answer.state.some((e: any) => e.type === 'm.room.create'), 'state');
  assert.ok(answer.auth_chain.length > 0, 'auth_chain');
  assert.is(answer.origin, a.serverName);
  assert.not.ok('members_omitted' in answer);
  assert.is((await memberOn(a, alice, pub, joiner)).content.membership, 'join');

  const l = await makeSigned(b, a, 'leave', pub, joiner);
  const left = await signedRequest(b, a, 'PUT', `/_matrix/federation/v1/send_leave/${enc(pub)}/${enc(l.id)}`, l.pdu);
  assert.is(left.status, 200, JSON.stringify(left.body));
  assert.equal(left.body, [200, {}]);
  assert.is((await memberOn(a, alice, pub, joiner)).content.membership, 'leave');

  // v1 invite: the body is the invite itself, its room state in `unsigned`; the room version comes from the create event there.
  const version = await roomVersion(a, pub);
  const invitee = await registerUser(asTestServer(b), 'vera');
  const inv = await buildOn(a, a, pub, { sender: alice.user_id, state_key: invitee.user_id, content: { membership: 'invite' } }, [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.join_rules', ''], ['m.room.member', alice.user_id]], version);
  const st = await currentStateMap(a, pub);
  const create = (await eventRow(a, st.get('m.room.create|')!)).json;
  const body = { ...inv.pdu, unsigned: { invite_room_state: [{ type: 'm.room.create', state_key: '', sender: alice.user_id, content: create.content }] } };
  const invited = await signedRequest(a, b, 'PUT', `/_matrix/federation/v1/invite/${enc(pub)}/${enc(inv.id)}`, body);
  assert.is(invited.status, 200, JSON.stringify(invited.body));
  assert.ok(Array.isArray(invited.body) && invited.body.length === 2 && invited.body[0] === 200, 'an array [200, {event}]');
  const signed = invited.body[1].event;
  assert.ok(signedBy(b, signed, version), "the invitee's server signed it");
  assert.ok(signedBy(a, signed, version), "the inviter's signature is kept");
  await eventually(async () => ok(await api(asTestServer(b), invitee, 'GET', '/sync?timeout=0')).rooms?.invite?.[pub] !== undefined, 'the v1 invite shows in the invitee\'s sync');
});

t('omit_members: no member events but the needed ones, a trimmed auth chain, servers_in_room; without it, everything', async ({ a, b, alice, olive }) => {
  const A = asTestServer(a);
  const named = await createRoom(A, alice, { preset: 'public_chat', name: 'Named' });
  ok(await api(A, olive, 'POST', `/join/${enc(named)}`, {}), 'olive joins');
  const partial = await makeSigned(b, a, 'join', named, `@pia:${b.serverName}`);
  const res = await fed(b).client.request({ destination: a.serverName, method: 'PUT', path: `/_matrix/federation/v2/send_join/${enc(named)}/${enc(partial.id)}`, query: { omit_members: 'true' }, body: partial.pdu as never });
  assert.is(res.members_omitted, true);
  const state = res.state as any[];
  const auth = res.auth_chain as any[];
  assert.not.ok(state.some((e) => e.type === 'm.room.member'), 'no member events in state of a named room');
  assert.ok(state.some((e) => e.type === 'm.room.power_levels') && state.some((e) => e.type === 'm.room.name'), 'the rest of the state is there');
  assert.equal(res.servers_in_room, [a.serverName]);
  // The auth chain holds what the join needs (alice's membership backs the power levels) and nothing already in state.
  const ids = (pdus: any[]) => new Set(pdus.map((p) => eventIdFor(p, partial.version)));
  const stateIds = ids(state);
  const authIds = ids(auth);
  for (const id of partial.pdu.auth_events as string[]) assert.ok(stateIds.has(id) || authIds.has(id), `auth event ${id} is in the answer`);
  for (const id of authIds) assert.not.ok(stateIds.has(id), 'nothing twice');
  assert.ok(auth.some((e) => e.type === 'm.room.member' && e.state_key === alice.user_id), "alice's membership is in the auth chain");
  assert.not.ok([...auth, ...state].some((e) => e.type === 'm.room.member' && e.state_key === olive.user_id), "olive's membership is left out");

  const full = await makeSigned(b, a, 'join', named, `@quinn:${b.serverName}`);
  const res2 = await fed(b).client.request({ destination: a.serverName, method: 'PUT', path: `/_matrix/federation/v2/send_join/${enc(named)}/${enc(full.id)}`, body: full.pdu as never });
  assert.is(res2.members_omitted, false);
  const members = (res2.state as any[]).filter((e) => e.type === 'm.room.member').map((e) => e.state_key).sort();
  assert.equal(members, [alice.user_id, olive.user_id, `@pia:${b.serverName}`].sort());

  // An unnamed room keeps the members who would be the joiner's heroes.
  const unnamed = await createRoom(A, alice, { preset: 'public_chat' });
  ok(await api(A, olive, 'POST', `/join/${enc(unnamed)}`, {}), 'olive joins the unnamed room');
  const hero = await makeSigned(b, a, 'join', unnamed, `@rho:${b.serverName}`);
  const res3 = await fed(b).client.request({ destination: a.serverName, method: 'PUT', path: `/_matrix/federation/v2/send_join/${enc(unnamed)}/${enc(hero.id)}`, query: { omit_members: 'true' }, body: hero.pdu as never });
  assert.is(res3.members_omitted, true);
  assert.equal((res3.state as any[]).filter((e) => e.type === 'm.room.member').map((e) => e.state_key).sort(), [alice.user_id, olive.user_id].sort());
});

t.run();

