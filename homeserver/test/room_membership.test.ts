import * as assert from 'uvu/assert';
import { type TestServer } from './support/harness.js';
import { api, assertError, createRoom, enc, invite, join, ok, putState, stateMap, suiteWithUsers, type User } from './support/rooms.js';

const t = suiteWithUsers('rooms: createRoom and membership', ['alice', 'bob', 'carol'] as const);

const membership = async (s: TestServer, viewer: User, roomId: string, userId: string) =>
  (await stateMap(s, viewer, roomId)).get(`m.room.member|${userId}`)?.content.membership;
const post = (s: TestServer, u: User, roomId: string, action: string, body: Record<string, unknown> = {}) =>
  api(s, u, 'POST', `/rooms/${enc(roomId)}/${action}`, body);
/** Every event of the room, oldest first (as the room creator sees it). */
const history = async (s: TestServer, u: User, roomId: string) =>
  (ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/messages?dir=f&limit=1000`)).chunk as any[]);

t('presets set join rules, history visibility and guest access; trusted_private_chat raises invitees', async ({ s, alice, bob }) => {
  const expect = {
    private_chat: ['invite', 'shared', 'can_join'],
    trusted_private_chat: ['invite', 'shared', 'can_join'],
    public_chat: ['public', 'shared', 'forbidden'],
  };
  for (const [preset, [joinRule, history, guests]] of Object.entries(expect)) {
    const roomId = await createRoom(s, alice, { preset, invite: [bob.user_id] });
    const st = await stateMap(s, alice, roomId);
    assert.is(st.get('m.room.join_rules|').content.join_rule, joinRule, preset);
    assert.is(st.get('m.room.history_visibility|').content.history_visibility, history, preset);
    assert.is(st.get('m.room.guest_access|').content.guest_access, guests, preset);
    const users = st.get('m.room.power_levels|').content.users;
    assert.equal(users, preset === 'trusted_private_chat' ? { [alice.user_id]: 100, [bob.user_id]: 100 } : { [alice.user_id]: 100 }, preset);
  }
  // Without a preset, visibility picks it: public -> public_chat.
  const pub = await createRoom(s, alice, { visibility: 'public' });
  assert.is((await stateMap(s, alice, pub)).get('m.room.join_rules|').content.join_rule, 'public');
});

t('createRoom: initial_state over the preset, name and topic over initial_state, invite with is_direct', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, {
    preset: 'private_chat',
    name: 'Real name',
    topic: 'Real topic',
    invite: [bob.user_id],
    is_direct: true,
    initial_state: [
      { type: 'm.room.join_rules', content: { join_rule: 'public' } },
      { type: 'm.room.name', state_key: '', content: { name: 'overridden' } },
      { type: 'org.example.setting', state_key: 'k', content: { on: true } },
    ],
  });
  const st = await stateMap(s, alice, roomId);
  assert.is(st.get('m.room.join_rules|').content.join_rule, 'public');
  assert.is(st.get('m.room.name|').content.name, 'Real name');
  assert.equal(st.get('m.room.topic|').content, { topic: 'Real topic', 'm.topic': { 'm.text': [{ body: 'Real topic', mimetype: 'text/plain' }] } });
  assert.equal(st.get('org.example.setting|k').content, { on: true });
  assert.equal(st.get(`m.room.member|${bob.user_id}`).content, { membership: 'invite', is_direct: true });

  // The spec's order, and what is overridden is not sent at all.
  const types = (await history(s, alice, roomId)).map((e) => (e.type === 'm.room.member' ? `member:${e.content.membership}` : e.type));
  assert.equal(types, [
    'm.room.create', 'member:join', 'm.room.power_levels', 'm.room.history_visibility', 'm.room.guest_access',
    'm.room.join_rules', 'org.example.setting', 'm.room.name', 'm.room.topic', 'member:invite',
  ]);
});

t('createRoom: room versions 10 and 11, power_level_content_override', async ({ s, alice }) => {
  for (const version of ['10', '11']) {
    const roomId = await createRoom(s, alice, { room_version: version, creation_content: { creator: '@mallory:hearth.test', 'm.federate': false } });
    const create = (await stateMap(s, alice, roomId)).get('m.room.create|');
    const expected: Record<string, unknown> = { room_version: version, 'm.federate': false };
    if (version === '10') expected.creator = alice.user_id; // v11 dropped `creator`: the sender is the creator
    assert.equal(create.content, expected, `v${version}`);
    assert.is(create.sender, alice.user_id);
  }
  for (const bad of ['9', '13', 'banana']) assertError(await api(s, alice, 'POST', '/createRoom', { room_version: bad }), 400, 'M_UNSUPPORTED_ROOM_VERSION', bad);
  assertError(await api(s, alice, 'POST', '/createRoom', { room_version: 11 }), 400, 'M_BAD_JSON');

  const roomId = await createRoom(s, alice, { power_level_content_override: { events_default: 20, kick: 75 } });
  const pl = (await stateMap(s, alice, roomId)).get('m.room.power_levels|').content;
  assert.is(pl.events_default, 20);
  assert.is(pl.kick, 75);
  assert.is(pl.ban, 50, 'the rest of the defaults stay');
  assert.equal(pl.users, { [alice.user_id]: 100 });
});

t('createRoom: invalid requests are 400 with the spec codes, and leave no room behind', async ({ s, alice, bob }) => {
  const before = ok(await api(s, alice, 'GET', '/joined_rooms')).joined_rooms.length;
  const cases: [Record<string, unknown>, number, string][] = [
    // The creator would lose the power to send the preset's events: M_INVALID_ROOM_STATE.
    [{ power_level_content_override: { users: {} } }, 400, 'M_INVALID_ROOM_STATE'],
    [{ initial_state: [{ type: 'm.room.create', content: { room_version: '11' } }] }, 400, 'M_INVALID_ROOM_STATE'],
    [{ power_level_content_override: { ban: 'fifty' } }, 400, 'M_INVALID_ROOM_STATE'],
    [{ initial_state: { type: 'x' } }, 400, 'M_BAD_JSON'],
    [{ initial_state: [{ type: 'x' }] }, 400, 'M_BAD_JSON'],
    [{ initial_state: [{ type: 'x'.repeat(256), content: {} }] }, 400, 'M_BAD_JSON'],
    [{ initial_state: [{ type: 'x', state_key: 5, content: {} }] }, 400, 'M_BAD_JSON'],
    [{ preset: 'party' }, 400, 'M_BAD_JSON'],
    [{ invite: ['not-a-user'] }, 400, 'M_INVALID_PARAM'],
    [{ invite: ['@nobody:hearth.test'] }, 400, 'M_INVALID_PARAM'],
    [{ invite: [alice.user_id] }, 400, 'M_INVALID_PARAM'],
    [{ invite_3pid: [{ id_server: 'id.example', medium: 'email', address: 'b@example.org' }] }, 400, 'M_MISSING_PARAM'], // no id_access_token
    [{ room_alias_name: 'has space' }, 400, 'M_INVALID_PARAM'],
    [{ room_alias_name: 'a:b' }, 400, 'M_INVALID_PARAM'],
  ];
  for (const [body, status, errcode] of cases) assertError(await api(s, alice, 'POST', '/createRoom', body), status, errcode, JSON.stringify(body));
  // Event content is canonical JSON: no floats.
  const float = await s.request('POST', '/_matrix/client/v3/createRoom', {
    token: alice.access_token,
    rawBody: '{"initial_state":[{"type":"x","content":{"f":1.5}}]}',
    headers: { 'content-type': 'application/json' },
  });
  assertError(float, 400, 'M_BAD_JSON');
  assert.is(ok(await api(s, alice, 'GET', '/joined_rooms')).joined_rooms.length, before, 'no half-made rooms');

  const roomId = await createRoom(s, alice, { room_alias_name: 'hearthside', invite: [bob.user_id] });
  assert.is((await stateMap(s, alice, roomId)).get('m.room.canonical_alias|').content.alias, '#hearthside:hearth.test');
  assert.equal(ok(await api(s, null, 'GET', `/directory/room/${enc('#hearthside:hearth.test')}`)).room_id, roomId);
  assertError(await api(s, alice, 'POST', '/createRoom', { room_alias_name: 'hearthside' }), 400, 'M_ROOM_IN_USE');
});

t('invite -> join; re-invite is a no-op; invite-only rooms refuse the uninvited; joined_rooms', async ({ s, alice, bob, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat' });
  assertError(await api(s, carol, 'POST', `/join/${enc(roomId)}`, {}), 403, 'M_FORBIDDEN', 'uninvited join');
  assertError(await post(s, bob, roomId, 'invite', { user_id: carol.user_id }), 403, 'M_FORBIDDEN', 'a non-member cannot invite');

  await invite(s, alice, roomId, bob.user_id);
  await invite(s, alice, roomId, bob.user_id); // "or was already invited": 200, no second invite
  assert.is((await history(s, alice, roomId)).filter((e) => e.state_key === bob.user_id).length, 1);
  assert.not.ok(ok(await api(s, bob, 'GET', '/joined_rooms')).joined_rooms.includes(roomId));

  ok(await post(s, bob, roomId, 'join', { reason: 'hi' }));
  assert.is(await membership(s, alice, roomId, bob.user_id), 'join');
  assert.ok(ok(await api(s, bob, 'GET', '/joined_rooms')).joined_rooms.includes(roomId));
  assertError(await post(s, alice, roomId, 'invite', { user_id: bob.user_id }), 403, 'M_FORBIDDEN', 'invite of a member');
  assertError(await post(s, alice, roomId, 'invite', { user_id: '@ghost:hearth.test' }), 404, 'M_NOT_FOUND');
  assertError(await post(s, alice, roomId, 'invite', {}), 400, 'M_MISSING_PARAM');
  assertError(await post(s, alice, roomId, 'invite', { medium: 'email', address: 'c@example.org', id_server: 'id.example' }), 400, 'M_MISSING_PARAM'); // 3PID form without id_access_token (third_party_invites.test.ts)
  assertError(await api(s, carol, 'POST', `/join/${enc(roomId)}`, { third_party_signed: {} }), 400, 'M_MISSING_PARAM'); // an empty proof (third_party_invites.test.ts)

  // Join by alias; `server_name` and `via` name servers to join through and are ignored here.
  const pub = await createRoom(s, alice, { preset: 'public_chat', room_alias_name: 'lobby' });
  const joined = ok(await api(s, carol, 'POST', `/join/${enc('#lobby:hearth.test')}?server_name=other.example&via=other.example`, {}));
  assert.is(joined.room_id, pub);
  assertError(await api(s, carol, 'POST', `/join/${enc('#nowhere:hearth.test')}`, {}), 404, 'M_NOT_FOUND');
  assertError(await api(s, carol, 'POST', `/join/${enc('!elsewhere:other.example')}`, {}), 404, 'M_NOT_FOUND');
  assertError(await api(s, carol, 'POST', '/join/lobby', {}), 400, 'M_INVALID_PARAM');
});

t('leave is idempotent; kick needs the kick level and a lower target', async ({ s, alice, bob, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat', power_level_content_override: { users: { [alice.user_id]: 100, [bob.user_id]: 50 } } });
  await join(s, bob, roomId);
  await join(s, carol, roomId);

  assertError(await post(s, carol, roomId, 'kick', { user_id: bob.user_id }), 403, 'M_FORBIDDEN', 'below the kick level');
  assertError(await post(s, bob, roomId, 'kick', { user_id: alice.user_id }), 403, 'M_FORBIDDEN', 'target not lower');
  ok(await post(s, bob, roomId, 'kick', { user_id: carol.user_id, reason: 'shoo' }));
  const kicked = (await stateMap(s, alice, roomId)).get(`m.room.member|${carol.user_id}`);
  assert.equal([kicked.content.membership, kicked.content.reason, kicked.sender], ['leave', 'shoo', bob.user_id]);
  assertError(await post(s, bob, roomId, 'kick', { user_id: carol.user_id }), 403, 'M_FORBIDDEN', 'kick of a non-member');
  await join(s, carol, roomId); // a kicked user may rejoin a public room

  ok(await post(s, carol, roomId, 'leave', {}));
  ok(await post(s, carol, roomId, 'leave', {}), 'leaving again');
  assert.is(await membership(s, alice, roomId, carol.user_id), 'leave');
  const other = await createRoom(s, alice);
  assertError(await post(s, carol, other, 'leave', {}), 403, 'M_FORBIDDEN', 'never in the room');
});

t('ban: no rejoin, no invite; unban; then rejoin by invite', async ({ s, alice, bob, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat', invite: [bob.user_id, carol.user_id] });
  await join(s, bob, roomId);
  assertError(await post(s, bob, roomId, 'ban', { user_id: carol.user_id }), 403, 'M_FORBIDDEN', 'below the ban level');
  ok(await post(s, alice, roomId, 'ban', { user_id: bob.user_id, reason: 'spam' }));
  assert.is(await membership(s, alice, roomId, bob.user_id), 'ban');
  assertError(await api(s, bob, 'POST', `/join/${enc(roomId)}`, {}), 403, 'M_FORBIDDEN', 'banned join');
  assertError(await post(s, alice, roomId, 'invite', { user_id: bob.user_id }), 403, 'M_FORBIDDEN', 'invite of a banned user');
  assertError(await post(s, alice, roomId, 'unban', { user_id: carol.user_id }), 403, 'M_BAD_STATE');

  ok(await post(s, alice, roomId, 'unban', { user_id: bob.user_id }));
  assert.is(await membership(s, alice, roomId, bob.user_id), 'leave');
  assertError(await api(s, bob, 'POST', `/join/${enc(roomId)}`, {}), 403, 'M_FORBIDDEN', 'invite-only still');
  await invite(s, alice, roomId, bob.user_id);
  await join(s, bob, roomId);
  assert.is(await membership(s, alice, roomId, bob.user_id), 'join');
});

t('knock only where join_rules is knock; the knock is accepted by invite', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat', room_alias_name: 'knockers' });
  assertError(await api(s, bob, 'POST', `/knock/${enc(roomId)}`, {}), 403, 'M_FORBIDDEN', 'join_rules invite');
  await putState(s, alice, roomId, 'm.room.join_rules', '', { join_rule: 'knock' });
  const knocked = ok(await api(s, bob, 'POST', `/knock/${enc('#knockers:hearth.test')}?via=hearth.test`, { reason: 'let me in' }));
  assert.is(knocked.room_id, roomId);
  const ev = (await stateMap(s, alice, roomId)).get(`m.room.member|${bob.user_id}`);
  assert.equal([ev.content.membership, ev.content.reason], ['knock', 'let me in']);
  await invite(s, alice, roomId, bob.user_id);
  assertError(await api(s, bob, 'POST', `/knock/${enc(roomId)}`, {}), 403, 'M_FORBIDDEN', 'an invited user cannot knock');
  await join(s, bob, roomId);
  assertError(await api(s, bob, 'POST', `/knock/${enc(roomId)}`, {}), 403, 'M_FORBIDDEN', 'a member cannot knock');
  assertError(await api(s, bob, 'POST', `/knock/${enc('!nope:hearth.test')}`, {}), 404, 'M_NOT_FOUND');
});

t('forget only after leaving; a new invite brings the room back', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  assertError(await post(s, bob, roomId, 'forget'), 400, 'M_UNKNOWN', 'forget while joined');
  ok(await post(s, bob, roomId, 'leave'));
  ok(await post(s, bob, roomId, 'forget'));
  assertError(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b`), 403, 'M_FORBIDDEN', 'history is gone once forgotten');

  await invite(s, alice, roomId, bob.user_id);
  ok(await post(s, bob, roomId, 'leave')); // rejects the invite
  ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b`), 'readable again up to the rejection');
});

t('PUT state m.room.member: per-room display names, bans; the auth rules decide', async ({ s, alice, bob, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  const path = (u: User) => `/rooms/${enc(roomId)}/state/m.room.member/${enc(u.user_id)}`;
  const nick = { membership: 'join', displayname: 'Bobby' };
  const first = ok(await api(s, bob, 'PUT', path(bob), nick)).event_id;
  assert.is(ok(await api(s, bob, 'PUT', path(bob), nick)).event_id, first, 'the same event again is not a new event');
  assert.equal(ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/joined_members`)).joined[bob.user_id], { display_name: 'Bobby' });

  assertError(await api(s, bob, 'PUT', path(carol), { membership: 'join' }), 403, 'M_FORBIDDEN', 'joining someone else');
  assertError(await api(s, bob, 'PUT', path(carol), { membership: 'ban' }), 403, 'M_FORBIDDEN', 'below the ban level');
  assertError(await api(s, bob, 'PUT', path(bob), { membership: 'sulk' }), 400, 'M_BAD_JSON');
  assertError(await api(s, bob, 'PUT', path(bob), { displayname: 'no membership' }), 400, 'M_BAD_JSON');
  assertError(await api(s, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.member/bob`, { membership: 'join' }), 400, 'M_INVALID_PARAM');
  ok(await api(s, alice, 'PUT', path(carol), { membership: 'ban', reason: 'pre-emptive' }));
  assert.is(await membership(s, alice, roomId, carol.user_id), 'ban');
  assertError(await api(s, carol, 'POST', `/join/${enc(roomId)}`, {}), 403, 'M_FORBIDDEN');
});

t.run();
