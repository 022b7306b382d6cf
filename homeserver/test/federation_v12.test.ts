// Room version 12 between servers: a v12 room on hs-a joined by a user of hs-b (invite v2 +
// make_join/send_join), messages both ways, the same state on both, the create event's wire
// form (no room_id) kept as is, and PDUs that list the create event in auth_events rejected.
// Invite and knock room state (spec v1.16, MSC4311): whole PDUs with the create event, checked
// by the receiving server against the room id; auth chains served for v12 events.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  asTestServer as ts,
  craftRemoteMember,
  currentStateMap,
  eventRow,
  eventually,
  inviteAndJoin,
  postTxn,
  startClusterWithUsers, type FederationCluster,
  type FederationTestServer,
} from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, assertError, enc, ok, putState, send, type User } from './support/rooms.js';
import { authEventTypesFor, authEventsSelection } from '../src/services/rooms/auth_rules.js';
import { eventIdFor } from '../src/services/rooms/event_format.js';
import { checkInviteeRoomState, roomStateForInvitee } from '../src/services/federation/stripped_state.js';
import { FederationError } from '../src/services/federation/client.js';
import { insertRemoteRoom } from '../src/storage/federated_events.js';

type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; carol: User; dave: User; roomId: string };
const t = suite<Ctx>('federation: room version 12');

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b'], { alice: 'hs-a', bob: 'hs-b', carol: 'hs-b', dave: 'hs-b' });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'] }, users);
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

const timelineBodies = async (s: FederationTestServer, u: User, roomId: string): Promise<string[]> => {
  const res = ok(await api(ts(s), u, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`));
  return res.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
};

t('a v12 room on A, joined by bob on B: messages both ways, the same state on both', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  ctx.roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { room_version: '12', preset: 'private_chat', name: 'Twelve across', power_level_content_override: { users: { [bob.user_id]: 100 } } })).room_id;
  const roomId = ctx.roomId;
  assert.not.ok(roomId.includes(':'));
  await send(ts(a), alice, roomId, 'before bob');
  await inviteAndJoin(a, alice, b, bob, roomId);
  await eventually(async () => (await currentStateMap(a, roomId)).get(`m.room.member|${bob.user_id}`) !== undefined, 'A sees bob join');
  const bobJoin = (await currentStateMap(a, roomId)).get(`m.room.member|${bob.user_id}`)!;
  assert.is((await eventRow(a, bobJoin)).json.content.membership, 'join');

  await send(ts(b), bob, roomId, 'from bob');
  await send(ts(a), alice, roomId, 'from alice');
  await eventually(async () => (await timelineBodies(a, alice, roomId)).includes('from bob'), 'bob\'s message reaches A');
  await eventually(async () => (await timelineBodies(b, bob, roomId)).includes('from alice'), 'alice\'s message reaches B');
  const stateA = [...(await currentStateMap(a, roomId))].sort();
  await eventually(async () => JSON.stringify([...(await currentStateMap(b, roomId))].sort()) === JSON.stringify(stateA), 'B has A\'s state');

  // B keeps the create event exactly as signed: no room_id, and its hash is the room id.
  const createId = (await currentStateMap(b, roomId)).get('m.room.create|')!;
  const createOnB = await eventRow(b, createId);
  assert.not.ok('room_id' in createOnB.json);
  assert.is(`!${eventIdFor(createOnB.json, '12').slice(1)}`, roomId);
  // No event on either server cites the create event.
  for (const s of [a, b]) {
    const rows = await s.hs.deps.db.query<{ json: string }>('select json from events where room_id = ?', [roomId]);
    assert.ok(rows.length > 5);
    for (const r of rows) assert.not.ok((JSON.parse(r.json) as { auth_events: string[] }).auth_events.includes(createId), `${s.label}: an event cites the create event`);
  }
  // bob is at 100 but alice created the room: B refuses bob's kick of alice, and state on B changes for both.
  assertError(await api(ts(b), bob, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: alice.user_id }), 403, 'M_FORBIDDEN');
  await putState(ts(b), bob, roomId, 'm.room.topic', '', { topic: 'set on B' });
  await eventually(async () => {
    const id = (await currentStateMap(a, roomId)).get('m.room.topic|');
    return id !== undefined && (await eventRow(a, id)).json.content.topic === 'set on B';
  }, 'B\'s topic reaches A');
});

t('A rejects a PDU from B that lists the create event in auth_events (v12 rule 3.2), and accepts a correct one', async (ctx) => {
  const { a, b, bob, roomId } = ctx;
  const db = a.hs.deps.db;
  const build = async (withCreate: boolean, body: string) => {
    const prev = (await db.query<{ event_id: string }>('select event_id from forward_extremities where room_id = ?', [roomId])).map((r) => r.event_id);
    const depth = Math.max(...(await db.query<{ depth: string }>('select depth from events where event_id in (?)', [prev])).map((r) => Number(r.depth))) + 1;
    const state = await currentStateMap(a, roomId);
    const draft = { type: 'm.room.message', sender: bob.user_id, content: { msgtype: 'm.text', body } };
    const keys = withCreate ? authEventTypesFor(draft, '12') : authEventsSelection(draft, '12');
    const auth = keys.map((k) => state.get(k.replace('\u0000', '|'))).filter((x): x is string => !!x);
    const pdu = { room_id: roomId, ...draft, prev_events: prev, auth_events: auth, depth, origin_server_ts: Date.now() };
    const { event, json } = b.hs.deps.services.rooms.signingKey.build(pdu, '12');
    return { id: event.event_id, pdu: JSON.parse(json) as Record<string, unknown> };
  };
  const bad = await build(true, 'cites the create event');
  const res = await postTxn(b, a, [bad.pdu]);
  assert.match(String(res.pdus[bad.id]?.error), 'rejected');
  const row = await eventRow(a, bad.id);
  assert.match(String(row.rejected), 'rule 3.2');
  const good = await build(false, 'cites what v12 selects');
  const res2 = await postTxn(b, a, [good.pdu]);
  assert.equal(res2.pdus[good.id], {});
  assert.is((await eventRow(a, good.id)).rejected, null);
});

/** An invite of `target` into `roomId` built on A's view (v12 auth event selection) and signed by A. */
async function craftInvite(a: FederationTestServer, roomId: string, sender: string, target: string): Promise<{ id: string; pdu: Record<string, unknown> }> {
  const db = a.hs.deps.db;
  const prev = (await db.query<{ event_id: string }>('select event_id from forward_extremities where room_id = ?', [roomId])).map((r) => r.event_id);
  const depth = Math.max(...(await db.query<{ depth: string }>('select depth from events where event_id in (?)', [prev])).map((r) => Number(r.depth))) + 1;
  const state = await currentStateMap(a, roomId);
  const draft = { type: 'm.room.member', sender, state_key: target, content: { membership: 'invite' } };
  const auth = authEventsSelection(draft, '12').map((k) => state.get(k.replace('\u0000', '|'))).filter((x): x is string => !!x);
  const { event, json } = a.hs.deps.services.rooms.signingKey.build({ room_id: roomId, ...draft, prev_events: prev, auth_events: auth, depth, origin_server_ts: Date.now() }, '12');
  return { id: event.event_id, pdu: JSON.parse(json) as Record<string, unknown> };
}

/** `PUT /v2/invite` from A to B; the answer, or the Matrix error B gave. */
async function putInvite(a: FederationTestServer, b: FederationTestServer, roomId: string, inv: { id: string; pdu: Record<string, unknown> }, roomState: unknown[]): Promise<{ ok: any } | { errcode: string | undefined; status: number | undefined }> {
  try {
    return { ok: await a.hs.deps.services.federation.client.request({ destination: b.serverName, method: 'PUT', path: `/_matrix/federation/v2/invite/${enc(roomId)}/${enc(inv.id)}`, body: { event: inv.pdu as never, room_version: '12', invite_room_state: roomState as never } }) };
  } catch (err) {
    if (!(err instanceof FederationError)) throw err;
    return { errcode: err.errcode, status: err.status };
  }
}

const isCreate = (e: any) => e.type === 'm.room.create' && e.state_key === '';
const syncOf = async (s: FederationTestServer, u: User) => ok(await api(ts(s), u, 'GET', '/sync?timeout=0'));

t('invite into a v12 room: A sends whole PDUs with the create event; B keeps the create PDU whose hash is the room id', async (ctx) => {
  const { a, b, alice, carol } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { room_version: '12', preset: 'private_chat', name: 'Invite state' })).room_id as string;
  // What A sends: every entry a whole v12 PDU of this room; the create one hashes to the room id.
  const sent = await roomStateForInvitee(a.hs.deps.db, roomId);
  const sentCreate = sent.find(isCreate)!;
  assert.ok(sentCreate, 'A sends the create event');
  assert.not.ok('room_id' in sentCreate);
  assert.is(`!${eventIdFor(sentCreate, '12').slice(1)}`, roomId);
  for (const e of sent) assert.ok(typeof e.signatures === 'object' && typeof e.hashes === 'object', `${String(e.type)} is a PDU`);

  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: carol.user_id }), 'invite carol over federation');
  await eventually(async () => (await syncOf(b, carol)).rooms?.invite?.[roomId] !== undefined, 'the invite reaches carol');
  const invState = (await syncOf(b, carol)).rooms.invite[roomId].invite_state.events as any[];
  const create = invState.find(isCreate);
  assert.ok(create?.signatures?.[a.serverName], 'the create event is the whole signed PDU');
  assert.is(`!${eventIdFor(create, '12').slice(1)}`, roomId);
  assert.is(create.sender, alice.user_id);
  // The other entries are stripped for the client; the name is there.
  const name = invState.find((e) => e.type === 'm.room.name');
  assert.equal(name, { type: 'm.room.name', state_key: '', sender: alice.user_id, content: { name: 'Invite state' } });
  assert.ok(invState.some((e) => e.type === 'm.room.member' && e.state_key === carol.user_id));
  // Stored on B likewise.
  const stored = await b.hs.deps.db.query<{ stripped_json: string }>('select stripped_json from remote_invite_state where room_id = ? and user_id = ?', [roomId, carol.user_id]);
  assert.ok(JSON.parse(stored[0]!.stripped_json).find(isCreate).hashes, 'B stores the create PDU');
  ok(await api(ts(b), carol, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'carol rejects the invite');
});

t('B refuses a v12 invite whose room state does not match the room id, lacks the create PDU, or fails its signatures', async (ctx) => {
  const { a, b, alice, carol, roomId: otherRoom } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { room_version: '12', preset: 'private_chat', name: 'Forged' })).room_id as string;
  const real = await roomStateForInvitee(a.hs.deps.db, roomId);
  const others = real.filter((e) => !isCreate(e));
  const otherCreate = (await roomStateForInvitee(a.hs.deps.db, otherRoom)).find(isCreate)!;
  const stripped = (e: any) => ({ type: e.type, state_key: e.state_key, sender: e.sender, content: e.content });
  const tampered = { ...real.find(isCreate)!, content: { ...(real.find(isCreate)!.content as object), 'm.federate': false } };
  const cases: [string, unknown[], string][] = [
    ["another room's create event (its hash is another room id)", [otherCreate, ...others], 'M_INVALID_PARAM'],
    ['no create event', others, 'M_MISSING_PARAM'],
    ['a stripped create event', [stripped(real.find(isCreate)), ...others], 'M_MISSING_PARAM'],
    ['a create event whose signature no longer covers it', [tampered, ...others], 'M_INVALID_PARAM'],
    ['an entry of another room', [...real, { ...stripped(others[0]), room_id: otherRoom }], 'M_INVALID_PARAM'],
  ];
  for (const [what, roomState, errcode] of cases) {
    const inv = await craftInvite(a, roomId, alice.user_id, carol.user_id);
    const res = await putInvite(a, b, roomId, inv, roomState);
    assert.ok(!('ok' in res), `${what}: refused`);
    assert.equal(res, { errcode, status: 400 }, what);
  }
  assert.is((await syncOf(b, carol)).rooms?.invite?.[roomId], undefined, 'no invite reached carol');
  // The same invite with the real room state is signed (the refusals are about the room state).
  const inv = await craftInvite(a, roomId, alice.user_id, carol.user_id);
  const res = await putInvite(a, b, roomId, inv, real);
  assert.ok('ok' in res && res.ok.event.signatures[b.serverName], 'B signs the invite with the right room state');
  // Synapse 1.163 form: only the create event whole, the rest stripped: accepted.
  const inv2 = await craftInvite(a, roomId, alice.user_id, carol.user_id);
  const res2 = await putInvite(a, b, roomId, inv2, [real.find(isCreate), ...others.map(stripped)]);
  assert.ok('ok' in res2, 'stripped non-create entries are tolerated');
});

t('the room state check: lenient before v12, knock state filtered', async (ctx) => {
  const { a, b, alice, roomId } = ctx;
  const verify = (r: unknown, v: any) => b.hs.deps.services.federationRooms.events.verify(r, v);
  const real = await roomStateForInvitee(a.hs.deps.db, roomId);
  const v11Room = ok(await api(ts(a), alice, 'POST', '/createRoom', { room_version: '11', preset: 'private_chat', name: 'Eleven' })).room_id as string;
  const v11 = await roomStateForInvitee(a.hs.deps.db, v11Room);
  const stripped = (e: any) => ({ type: e.type, state_key: e.state_key, sender: e.sender, content: e.content });
  // v11, pre-1.16 stripped state without a create event: accepted as is.
  const old = await checkInviteeRoomState(verify, v11Room, '11', v11.filter((e) => !isCreate(e)).map(stripped), 'invite_room_state');
  assert.is(old.refusal, undefined);
  assert.is(old.kept.length, v11.length - 1);
  // v11, a create event of another room: refused even so (it contradicts the invite).
  const otherV11 = ok(await api(ts(a), alice, 'POST', '/createRoom', { room_version: '11', preset: 'private_chat' })).room_id as string;
  const otherCreate = (await roomStateForInvitee(a.hs.deps.db, otherV11)).find(isCreate);
  const wrong = await checkInviteeRoomState(verify, v11Room, '11', [otherCreate, ...v11.filter((e) => !isCreate(e))], 'invite_room_state');
  assert.is(wrong.refusal?.errcode, 'M_INVALID_PARAM');
  // v11 whole PDUs: the create event kept stripped for clients (only v12 keeps it whole).
  const fine = await checkInviteeRoomState(verify, v11Room, '11', v11, 'invite_room_state');
  assert.is(fine.refusal, undefined);
  assert.equal(Object.keys(fine.kept.find(isCreate) as object).sort(), ['content', 'sender', 'state_key', 'type']);
  // v12 knock state with a forged entry: the entry is left out, the rest kept.
  const forgedName = { ...real.find((e) => e.type === 'm.room.name')!, content: { name: 'forged' }, hashes: { sha256: 'AAAA' } };
  const knock = await checkInviteeRoomState(verify, roomId, '12', [...real.filter((e) => e.type !== 'm.room.name'), forgedName], 'knock_room_state');
  assert.ok(knock.refusal, 'would refuse an invite');
  assert.not.ok(knock.kept.some((e: any) => e.type === 'm.room.name'), 'the forged entry is dropped');
  assert.ok(knock.kept.some(isCreate));
});

t('knock on a v12 room: the knocker\'s knock state carries the create PDU whose hash is the room id', async (ctx) => {
  const { a, b, alice, carol } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { room_version: '12', preset: 'private_chat', name: 'Knock knock', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] })).room_id as string;
  ok(await api(ts(b), carol, 'POST', `/knock/${enc(roomId)}?server_name=${enc(a.serverName)}`, {}), 'carol knocks');
  const knocked = (await syncOf(b, carol)).rooms?.knock?.[roomId];
  assert.ok(knocked, 'the knock shows in carol\'s sync');
  const create = (knocked.knock_state.events as any[]).find(isCreate);
  assert.ok(create?.signatures?.[a.serverName], 'the create event is the whole PDU');
  assert.is(`!${eventIdFor(create, '12').slice(1)}`, roomId);
  assert.ok((knocked.knock_state.events as any[]).some((e) => e.type === 'm.room.name' && e.content.name === 'Knock knock'));
});

t('/event_auth and /state of a v12 event: the auth_events closure, without the create event no event lists; send_join state has it', async (ctx) => {
  const { a, b, bob, roomId } = ctx;
  const createId = (await currentStateMap(a, roomId)).get('m.room.create|')!;
  const bobJoin = (await currentStateMap(a, roomId)).get(`m.room.member|${bob.user_id}`)!;
  const client = b.hs.deps.services.federation.client;
  const res = await client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(bobJoin)}` });
  const ids = new Set((res.auth_chain as any[]).map((e) => eventIdFor(e, '12')));
  // Spec (rooms v12 "Auth chain"): the events reachable through auth_events; v12 lists no create event.
  const expected = new Set<string>();
  const walk = async (id: string) => {
    for (const x of (await eventRow(a, id)).json.auth_events as string[]) if (!expected.has(x)) { expected.add(x); await walk(x); }
  };
  await walk(bobJoin);
  assert.ok(expected.size >= 3);
  assert.equal([...ids].sort(), [...expected].sort());
  assert.not.ok(ids.has(createId));
  // /state at bob's join: the create event is in the state, so the room can be rebuilt from the answer.
  const st = await client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/state/${enc(roomId)}`, query: { event_id: bobJoin } });
  assert.ok((st.pdus as any[]).some((e) => eventIdFor(e, '12') === createId));
});

t('joining a v12 room: a send_join answer without the create event anywhere still works (B fetches the one the room id names)', async (ctx) => {
  const { a, b, alice, dave } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { room_version: '12', preset: 'public_chat', name: 'No create sent' })).room_id as string;
  const createId = `$${roomId.slice(1)}`;
  // The real make_join/send_join, then the answer as a resident might send it: no create event in
  // `state` nor in `auth_chain` (which, for v12, the spec's auth chain never needs to hold).
  const joins = b.hs.deps.services.federationRooms.joins as any;
  const { made, res } = await joins.makeAndSendJoin(dave.user_id, roomId, [a.serverName]);
  const answer = { ...res, state: (res.state as any[]).filter((e) => !isCreate(e)), auth_chain: (res.auth_chain as any[]).filter((e) => !isCreate(e)) };
  assert.ok((res.state as any[]).some(isCreate), 'A itself sends the create event in state');
  a.federationRequests.length = 0;
  await joins.persistJoin(made.server, roomId, made.version, { event: made.event, json: made.json }, answer);
  const stateB = await currentStateMap(b, roomId);
  assert.is(stateB.get('m.room.create|'), createId);
  assert.is((await eventRow(b, stateB.get(`m.room.member|${dave.user_id}`)!)).json.content.membership, 'join');
  assert.ok(a.federationRequests.some((r) => r.method === 'GET' && r.url.includes(`/event/${enc(createId)}`)), 'B fetched the create event');
  await send(ts(b), dave, roomId, 'dave is in');
  await eventually(async () => (await timelineBodies(a, alice, roomId)).includes('dave is in'), 'dave\'s message reaches A');
});

t('fetching the auth chain of a v12 event: /event_auth leaves out the create event, B fetches it so the chain is not rejected', async (ctx) => {
  const { a, b, alice } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { room_version: '12', preset: 'public_chat', name: 'Chain' })).room_id as string;
  const createId = `$${roomId.slice(1)}`;
  const msgId = await send(ts(a), alice, roomId, 'needs its chain');
  const msg = (await eventRow(a, msgId)).json;
  // B counts as in the room for A (so A serves it), but B holds none of the room's events yet.
  await craftRemoteMember(a, roomId, ctx.dave.user_id);
  await insertRemoteRoom(b.hs.deps.db, roomId, '12', alice.user_id); // as persistJoin does before storing outliers
  a.federationRequests.length = 0;
  await b.hs.deps.services.federationRooms.events.fetchAuthChain(a.serverName, { ...msg, event_id: msgId }, '12');
  assert.ok(a.federationRequests.some((r) => r.url.includes('/event_auth/')), 'asked /event_auth');
  assert.ok(a.federationRequests.some((r) => r.url.includes(`/event/${enc(createId)}`)), 'then fetched the create event');
  assert.is((await eventRow(b, createId)).rejected, null);
  for (const id of msg.auth_events as string[]) assert.is((await eventRow(b, id)).rejected, null, `auth event ${id} accepted`);
});

t.run();
