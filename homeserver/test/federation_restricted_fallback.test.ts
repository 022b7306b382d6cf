import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { beforeAll } from './support/hooks.js';
import { api, assertError, createRoom, enc, ok, send, type User } from './support/rooms.js';
import { asTestServer as ts, currentStateMap, eventRow, eventually, inviteAndJoin, startClusterWithUsers, type FederationCluster, type FederationTestServer } from './support/federation.js';
import { verifyEventSignature } from '../src/services/rooms/event_format.js';
import type { RoomVersionId } from '../src/services/rooms/pdu.js';

/**
 * Restricted rooms, the fallback when we are in the room but cannot vouch: A hosts the space S and
 * the room R (restricted to S, invite level 50). bob (B) joined both earlier as a plain member, so
 * B is in R but none of its users there may invite. dan (B) is in S; his join of R goes through A
 * (make_join/send_join), which names alice and signs; B then stores the join as one more event of
 * the room it holds. eve (B, not in S) is still refused.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; dan: User; eve: User; space: string; room: string };
const t = suite<Ctx>('federation: restricted room joins through a resident that can vouch');

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b'], { alice: 'hs-a', bob: 'hs-b', dan: 'hs-b', eve: 'hs-b' });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'] }, users);
  ctx.space = await createRoom(ts(ctx.a), ctx.alice, { preset: 'public_chat', creation_content: { type: 'm.space' } });
  ctx.room = await createRoom(ts(ctx.a), ctx.alice, {
    preset: 'private_chat',
    initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: ctx.space }] } }],
    power_level_content_override: { invite: 50 },
  });
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

t('dan joins R through A when B has nobody who may invite; both servers agree', async ({ a, b, alice, bob, dan, eve, space, room }) => {
  // bob: into S, then into R (B not in R yet: a remote join that A vouches for).
  await inviteAndJoin(a, alice, b, bob, space, { invite: false });
  await inviteAndJoin(a, alice, b, bob, room, { invite: false });
  const bobJoin = await eventRow(b, (await currentStateMap(b, room)).get(`m.room.member|${bob.user_id}`)!);
  assert.is(bobJoin.json.content.join_authorised_via_users_server, alice.user_id, 'bob was vouched for by alice');
  const levels = ok(await api(ts(b), bob, 'GET', `/rooms/${enc(room)}/state/m.room.power_levels/`));
  assert.is(levels.invite, 50);
  assert.is(levels.users?.[bob.user_id], undefined, 'bob is a plain member: B cannot vouch');

  // dan: into S through B's own view (B is in S), not into R.
  ok(await api(ts(b), dan, 'POST', `/join/${enc(space)}`, {}), 'dan joins S');
  await eventually(async () => (await currentStateMap(a, space)).has(`m.room.member|${dan.user_id}`), 'A sees dan in S');

  const joined = ok(await api(ts(b), dan, 'POST', `/join/${enc(room)}`, {}), 'dan joins R');
  assert.is(joined.room_id, room);
  const joinId = (await currentStateMap(b, room)).get(`m.room.member|${dan.user_id}`);
  assert.ok(joinId, 'B holds dan\'s membership');
  const onB = await eventRow(b, joinId!);
  assert.is(onB.json.content.membership, 'join');
  assert.is(onB.json.content.join_authorised_via_users_server, alice.user_id, 'vouched for by a user of A');
  assert.ok(onB.json.signatures?.[a.serverName], 'A countersigned the join');
  const keyA = a.hs.deps.services.rooms.signingKey;
  const version = (await b.hs.deps.db.query<{ room_version: string }>('select room_version from rooms where room_id = ?', [room]))[0]!.room_version as RoomVersionId;
  assert.ok(verifyEventSignature(onB.json, version, a.serverName, keyA.keyId, keyA.publicKeyBase64), 'A\'s signature verifies');
  assert.is(onB.rejected, null);
  assert.is(onB.softFailed, false);
  assert.ok(onB.streamOrdering !== null && !onB.outlier, 'in B\'s timeline, not an outlier');
  const onA = await eventRow(a, joinId!);
  assert.is(onA.rejected, null, 'A accepted it');

  // Both servers agree on R's state, and dan can talk in it.
  await eventually(async () => {
    const [sa, sb] = [await currentStateMap(a, room), await currentStateMap(b, room)];
    return JSON.stringify([...sa].sort()) === JSON.stringify([...sb].sort());
  }, 'A and B agree on R\'s state');
  const members = ok(await api(ts(a), alice, 'GET', `/rooms/${enc(room)}/joined_members`)).joined;
  assert.ok(members[dan.user_id], 'A sees dan joined');
  const hello = await send(ts(b), dan, room, 'hello from dan');
  await eventually(async () => (await eventRow(a, hello).catch(() => null))?.rejected === null, 'A accepts dan\'s message');

  // eve is in no allow room: the fallback does not admit her.
  assertError(await api(ts(b), eve, 'POST', `/join/${enc(room)}`, {}), 403, 'M_FORBIDDEN', 'eve joins R');
  assert.is((await currentStateMap(b, room)).get(`m.room.member|${eve.user_id}`), undefined);
});

t.run();
