import * as assert from 'uvu/assert';
import { type TestServer } from './support/harness.js';
import { api, assertError, createRoom, enc, invite, join, ok, stateMap, suiteWithUsers, type User } from './support/rooms.js';

/**
 * Restricted rooms on one server (client-server API "Restricted rooms"): joined members of an allow
 * room join without an invite, vouched for by a local member who may invite
 * (`join_authorised_via_users_server`); everyone else needs an invite; `knock_restricted` also
 * lets them knock.
 */
const t = suiteWithUsers('rooms: restricted join rules', ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'] as const);

const memberEvent = async (s: TestServer, viewer: User, roomId: string, userId: string) => (await stateMap(s, viewer, roomId)).get(`m.room.member|${userId}`);
const restrictedTo = (rule: string, ...roomIds: string[]) => ({
  type: 'm.room.join_rules',
  state_key: '',
  content: { join_rule: rule, allow: roomIds.map((room_id) => ({ type: 'm.room_membership', room_id })) },
});

t('a member of the allow room joins, vouched for by a local member who may invite; others get 403', async ({ s, alice, bob, carol, dave, erin }) => {
  const space = await createRoom(s, alice, { preset: 'public_chat', creation_content: { type: 'm.space' } });
  await join(s, bob, space);
  await join(s, erin, space);
  // erin is a member of R with power 0, below the invite level: she may not vouch for anyone.
  const room = await createRoom(s, alice, {
    preset: 'private_chat',
    initial_state: [restrictedTo('restricted', '!elsewhere:unknown.example', space)],
    power_level_content_override: { invite: 50 },
  });
  await join(s, erin, room);
  assert.is((await memberEvent(s, alice, room, erin.user_id)).content.join_authorised_via_users_server, alice.user_id);

  await join(s, bob, room);
  const bobJoin = await memberEvent(s, alice, room, bob.user_id);
  assert.is(bobJoin.content.membership, 'join');
  assert.is(bobJoin.content.join_authorised_via_users_server, alice.user_id, 'alice (power 100) vouches, not erin (0 < invite 50)');

  // carol is in no allow room: refused, with a message that says why.
  const refused = await api(s, carol, 'POST', `/join/${enc(room)}`, {});
  assertError(refused, 403, 'M_FORBIDDEN', 'not in the space');
  assert.match(refused.body.error, /restricted/);
  assert.is(await memberEvent(s, alice, room, carol.user_id), undefined);

  // An invited non-member joins like in any invite-only room, without the field.
  await invite(s, alice, room, dave.user_id);
  await join(s, dave, room);
  const daveJoin = await memberEvent(s, alice, room, dave.user_id);
  assert.is(daveJoin.content.membership, 'join');
  assert.not.ok('join_authorised_via_users_server' in daveJoin.content);

  // Membership of the allow room is checked at join time only: carol joins the space, then the room.
  await join(s, carol, space);
  await join(s, carol, room);
  assert.is((await memberEvent(s, alice, room, carol.user_id)).content.join_authorised_via_users_server, alice.user_id);
});

t('leaving the allow room ends the right to join; with nobody local who may invite, 403', async ({ s, alice, bob, frank }) => {
  const space = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, frank, space);
  const room = await createRoom(s, alice, { preset: 'private_chat', initial_state: [restrictedTo('restricted', space)], power_level_content_override: { invite: 50 } });
  // frank leaves the space before joining: no longer allowed.
  ok(await api(s, frank, 'POST', `/rooms/${enc(space)}/leave`, {}), 'frank leaves the space');
  assertError(await api(s, frank, 'POST', `/join/${enc(room)}`, {}), 403, 'M_FORBIDDEN', 'left the space');

  // bob is in the space, but once alice (the only member who may invite) has left, nobody can vouch.
  await join(s, bob, space);
  await join(s, frank, space);
  await join(s, frank, room);
  ok(await api(s, alice, 'POST', `/rooms/${enc(room)}/leave`, {}), 'alice leaves the room');
  const res = await api(s, bob, 'POST', `/join/${enc(room)}`, {});
  assertError(res, 403, 'M_FORBIDDEN', 'no local inviter');
  assert.match(res.body.error, /may invite/);
});

t('knock_restricted: members of the allow room join, anyone else may knock', async ({ s, alice, bob, carol }) => {
  const space = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, space);
  const room = await createRoom(s, alice, { preset: 'private_chat', initial_state: [restrictedTo('knock_restricted', space)] });
  await join(s, bob, room);
  assert.is((await memberEvent(s, alice, room, bob.user_id)).content.join_authorised_via_users_server, alice.user_id);

  assertError(await api(s, carol, 'POST', `/join/${enc(room)}`, {}), 403, 'M_FORBIDDEN', 'carol joins without being in the space');
  ok(await api(s, carol, 'POST', `/knock/${enc(room)}`, { reason: 'let me in' }), 'carol knocks');
  assert.is((await memberEvent(s, alice, room, carol.user_id)).content.membership, 'knock');
  // Accepting the knock is an invite; then carol joins without the field.
  await invite(s, alice, room, carol.user_id);
  await join(s, carol, room);
  assert.not.ok('join_authorised_via_users_server' in (await memberEvent(s, alice, room, carol.user_id)).content);
});

t('a restricted room with no usable allow entry admits only the invited; plain restricted refuses knocks', async ({ s, alice, bob }) => {
  const room = await createRoom(s, alice, {
    preset: 'private_chat',
    initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.other', room_id: '!x:y' }, 'junk'] } }],
  });
  assertError(await api(s, bob, 'POST', `/join/${enc(room)}`, {}), 403, 'M_FORBIDDEN', 'no conditions');
  assertError(await api(s, bob, 'POST', `/knock/${enc(room)}`, {}), 403, 'M_FORBIDDEN', 'knock on restricted');
});

t.run();
