import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { api, assertError, createRoom, enc, join, ok, putState, stateMap, suiteWithUsers, type User } from './support/rooms.js';

const t = suiteWithUsers('rooms: aliases and the published room directory', ['alice', 'bob', 'carol'] as const);

const aliasPath = (alias: string) => `/directory/room/${enc(alias)}`;
const canonical = async (s: TestServer, u: User, roomId: string) => (await stateMap(s, u, roomId)).get('m.room.canonical_alias|')?.content;

t('aliases: create, resolve (without logging in), taken, invalid, not ours', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  ok(await api(s, alice, 'PUT', aliasPath('#fire:hearth.test'), { room_id: roomId }));
  assert.equal(ok(await api(s, null, 'GET', aliasPath('#fire:hearth.test'))), { room_id: roomId, servers: ['hearth.test'] });
  assert.equal(ok(await api(s, bob, 'GET', aliasPath('#fire:hearth.test'))).room_id, roomId);

  assertError(await api(s, alice, 'PUT', aliasPath('#fire:hearth.test'), { room_id: roomId }), 409, 'M_UNKNOWN', 'taken');
  assertError(await api(s, alice, 'PUT', aliasPath('#fire:other.example'), { room_id: roomId }), 400, 'M_INVALID_PARAM', 'not ours');
  for (const bad of ['fire:hearth.test', '#fire', '#:hearth.test', `#${'x'.repeat(250)}:hearth.test`, '#a:bad host']) {
    assertError(await api(s, alice, 'PUT', aliasPath(bad), { room_id: roomId }), 400, 'M_INVALID_PARAM', bad);
    assertError(await api(s, alice, 'GET', aliasPath(bad)), 400, 'M_INVALID_PARAM', bad);
  }
  assertError(await api(s, alice, 'PUT', aliasPath('#x:hearth.test'), {}), 400, 'M_MISSING_PARAM');
  assertError(await api(s, alice, 'PUT', aliasPath('#x:hearth.test'), { room_id: 'nope' }), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'PUT', aliasPath('#x:hearth.test'), { room_id: '!nope:hearth.test' }), 404, 'M_NOT_FOUND');
  assertError(await api(s, bob, 'PUT', aliasPath('#x:hearth.test'), { room_id: roomId }), 403, 'M_FORBIDDEN', 'not in the room');
  assertError(await api(s, null, 'PUT', aliasPath('#x:hearth.test'), { room_id: roomId }), 401, 'M_MISSING_TOKEN');
  assertError(await api(s, alice, 'GET', aliasPath('#nothing:hearth.test')), 404, 'M_NOT_FOUND');
  assertError(await api(s, alice, 'GET', aliasPath('#fire:other.example')), 404, 'M_NOT_FOUND', 'no federation yet');
});

t('aliases: deleted by their creator or by members who may change the canonical alias', async ({ s, alice, bob, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  await join(s, carol, roomId);
  ok(await api(s, bob, 'PUT', aliasPath('#bobs:hearth.test'), { room_id: roomId }), 'any member may add an alias');
  ok(await api(s, alice, 'PUT', aliasPath('#alices:hearth.test'), { room_id: roomId }));
  assert.equal(ok(await api(s, carol, 'GET', `/rooms/${enc(roomId)}/aliases`)).aliases, ['#alices:hearth.test', '#bobs:hearth.test']);

  assertError(await api(s, carol, 'DELETE', aliasPath('#bobs:hearth.test')), 403, 'M_FORBIDDEN', 'neither creator nor moderator');
  assertError(await api(s, bob, 'DELETE', aliasPath('#alices:hearth.test')), 403, 'M_FORBIDDEN', 'bob is at 0');
  ok(await api(s, bob, 'DELETE', aliasPath('#bobs:hearth.test')), 'the creator of the alias');
  ok(await api(s, alice, 'DELETE', aliasPath('#alices:hearth.test')));
  assertError(await api(s, alice, 'DELETE', aliasPath('#alices:hearth.test')), 404, 'M_NOT_FOUND');
  assertError(await api(s, alice, 'DELETE', aliasPath('#alices:other.example')), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'GET', aliasPath('#bobs:hearth.test')), 404, 'M_NOT_FOUND');
  assert.equal(ok(await api(s, carol, 'GET', `/rooms/${enc(roomId)}/aliases`)).aliases, []);

  // Moderators' deletions also take the alias out of m.room.canonical_alias.
  ok(await api(s, alice, 'PUT', aliasPath('#main:hearth.test'), { room_id: roomId }));
  ok(await api(s, alice, 'PUT', aliasPath('#alt:hearth.test'), { room_id: roomId }));
  await putState(s, alice, roomId, 'm.room.canonical_alias', '', { alias: '#main:hearth.test', alt_aliases: ['#alt:hearth.test'] });
  ok(await api(s, alice, 'DELETE', aliasPath('#alt:hearth.test')));
  assert.equal(await canonical(s, alice, roomId), { alias: '#main:hearth.test', alt_aliases: [] });
  ok(await api(s, alice, 'DELETE', aliasPath('#main:hearth.test')));
  assert.equal(await canonical(s, alice, roomId), { alt_aliases: [] });
});

t('GET /rooms/{roomId}/aliases: members only, unless world_readable', async ({ s, alice, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat', room_alias_name: 'readable' });
  assertError(await api(s, carol, 'GET', `/rooms/${enc(roomId)}/aliases`), 403, 'M_FORBIDDEN');
  assertError(await api(s, carol, 'GET', `/rooms/${enc('!unknown:hearth.test')}/aliases`), 403, 'M_FORBIDDEN');
  assertError(await api(s, carol, 'GET', '/rooms/not-a-room/aliases'), 400, 'M_INVALID_PARAM');
  await putState(s, alice, roomId, 'm.room.history_visibility', '', { history_visibility: 'world_readable' });
  assert.equal(ok(await api(s, carol, 'GET', `/rooms/${enc(roomId)}/aliases`)).aliases, ['#readable:hearth.test']);
});

t('m.room.canonical_alias: new aliases must be valid and point to the room', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat', room_alias_name: 'here' });
  await join(s, bob, roomId);
  const elsewhere = await createRoom(s, alice, { room_alias_name: 'there' });
  const set = (content: object) => api(s, alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.canonical_alias`, content);
  assertError(await set({ alias: '#there:hearth.test' }), 400, 'M_BAD_ALIAS', 'points elsewhere');
  assertError(await set({ alias: '#here:hearth.test', alt_aliases: ['#unknown:hearth.test'] }), 400, 'M_BAD_ALIAS', 'unknown');
  assertError(await set({ alias: 'here' }), 400, 'M_INVALID_PARAM');
  assertError(await set({ alt_aliases: '#here:hearth.test' }), 400, 'M_INVALID_PARAM');
  assertError(await set({ alt_aliases: [5] }), 400, 'M_INVALID_PARAM');
  ok(await set({ alias: '#here:hearth.test', alt_aliases: ['#remote:other.example'] }), 'other servers cannot be checked yet');
  // Aliases already in the event are not checked again: bob deletes his alias, but may not edit the
  // event (the alias stays listed), and alice can still send the event with it.
  ok(await api(s, bob, 'PUT', aliasPath('#extra:hearth.test'), { room_id: roomId }));
  const withExtra = { alias: '#here:hearth.test', alt_aliases: ['#extra:hearth.test'] };
  ok(await set(withExtra));
  ok(await api(s, bob, 'DELETE', aliasPath('#extra:hearth.test')));
  assert.equal(await canonical(s, alice, roomId), withExtra);
  ok(await set({ ...withExtra, 'org.example.note': 'unchanged aliases' }));
  ok(await set({}), 'removing the canonical alias');
  assert.is((await canonical(s, alice, elsewhere)).alias, '#there:hearth.test');
});

t('directory visibility: read by anyone, changed by moderators', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  const path = `/directory/list/room/${enc(roomId)}`;
  assert.equal(ok(await api(s, null, 'GET', path)), { visibility: 'private' });
  assertError(await api(s, bob, 'PUT', path, { visibility: 'public' }), 403, 'M_FORBIDDEN');
  ok(await api(s, alice, 'PUT', path, {}), 'defaults to public');
  assert.equal(ok(await api(s, bob, 'GET', path)), { visibility: 'public' });
  ok(await api(s, alice, 'PUT', path, { visibility: 'private' }));
  assert.equal(ok(await api(s, bob, 'GET', path)), { visibility: 'private' });
  assertError(await api(s, alice, 'PUT', path, { visibility: 'hidden' }), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'GET', `/directory/list/room/${enc('!nope:hearth.test')}`), 404, 'M_NOT_FOUND');
  assertError(await api(s, alice, 'PUT', `/directory/list/room/${enc('!nope:hearth.test')}`, { visibility: 'public' }), 404, 'M_NOT_FOUND');
  const createdPublic = await createRoom(s, alice, { visibility: 'public' });
  assert.equal(ok(await api(s, null, 'GET', `/directory/list/room/${enc(createdPublic)}`)), { visibility: 'public' });
});

t('publicRooms: only published rooms, their summaries, pagination both ways, search, room types', async () => {
  // A server of its own, for an exact listing.
  const s2 = await startTestServer();
  try {
    const [a, b, c] = [await registerUser(s2, 'alice'), await registerUser(s2, 'bob'), await registerUser(s2, 'carol')];
    const big = await createRoom(s2, a, { visibility: 'public', preset: 'public_chat', name: 'Big Hall', topic: 'Everyone here', room_alias_name: 'hall' });
    await join(s2, b, big);
    await join(s2, c, big);
    const mid = await createRoom(s2, a, { visibility: 'public', preset: 'public_chat', name: 'Garden', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'world_readable' } }] });
    await join(s2, b, mid);
    const space = await createRoom(s2, a, { visibility: 'public', preset: 'private_chat', topic: 'a quiet space', creation_content: { type: 'm.space' } });
    await putState(s2, a, space, 'm.room.avatar', '', { url: 'mxc://hearth.test/abc' });
    await createRoom(s2, a, { preset: 'public_chat', name: 'Unlisted Hall' });
    const emptied = await createRoom(s2, b, { visibility: 'public', name: 'Abandoned' });
    ok(await api(s2, b, 'POST', `/rooms/${enc(emptied)}/leave`, {}));

    const all = ok(await api(s2, null, 'GET', '/publicRooms'));
    assert.equal(all.chunk.map((r: any) => r.room_id), [big, mid, space], 'most members first; unlisted and empty rooms left out');
    assert.is(all.total_room_count_estimate, 3);
    assert.not.ok('next_batch' in all || 'prev_batch' in all);
    assert.equal(all.chunk[0], {
      room_id: big, name: 'Big Hall', topic: 'Everyone here', canonical_alias: '#hall:hearth.test', num_joined_members: 3,
      world_readable: false, guest_can_join: false, join_rule: 'public',
    });
    assert.equal([all.chunk[1].world_readable, all.chunk[1].num_joined_members], [true, 2]);
    assert.equal(all.chunk[2], {
      room_id: space, topic: 'a quiet space', num_joined_members: 1, world_readable: false, guest_can_join: true,
      join_rule: 'invite', avatar_url: 'mxc://hearth.test/abc', room_type: 'm.space',
    });

    // Pages of two: forwards with next_batch, back with prev_batch.
    const p1 = ok(await api(s2, a, 'GET', '/publicRooms?limit=2'));
    assert.equal(p1.chunk.map((r: any) => r.room_id), [big, mid]);
    assert.not.ok('prev_batch' in p1);
    const p2 = ok(await api(s2, a, 'POST', '/publicRooms', { limit: 2, since: p1.next_batch }));
    assert.equal(p2.chunk.map((r: any) => r.room_id), [space]);
    assert.not.ok('next_batch' in p2);
    const back = ok(await api(s2, a, 'GET', `/publicRooms?limit=2&since=${enc(p2.prev_batch)}`));
    assert.equal(back.chunk.map((r: any) => r.room_id), [big, mid]);
    // One at a time to the end and back again.
    const ones = [ok(await api(s2, a, 'GET', '/publicRooms?limit=1'))];
    while (ones[ones.length - 1].next_batch) ones.push(ok(await api(s2, a, 'GET', `/publicRooms?limit=1&since=${enc(ones[ones.length - 1].next_batch)}`)));
    assert.equal(ones.map((p) => p.chunk[0].room_id), [big, mid, space]);
    const prev1 = ok(await api(s2, a, 'GET', `/publicRooms?limit=1&since=${enc(ones[2].prev_batch)}`));
    assert.equal([prev1.chunk[0].room_id, 'next_batch' in prev1, 'prev_batch' in prev1], [mid, true, true]);
    const prev2 = ok(await api(s2, a, 'GET', `/publicRooms?limit=1&since=${enc(prev1.prev_batch)}`));
    assert.equal([prev2.chunk[0].room_id, 'prev_batch' in prev2], [big, false]);

    const search = async (filter: object) => (ok(await api(s2, a, 'POST', '/publicRooms', { filter })).chunk as any[]).map((r) => r.room_id);
    assert.equal(await search({ generic_search_term: 'hall' }), [big], 'name, case-insensitive; the unlisted hall stays hidden');
    assert.equal(await search({ generic_search_term: 'QUIET' }), [space], 'topic');
    assert.equal(await search({ generic_search_term: '#hall:' }), [big], 'canonical alias');
    assert.equal(await search({ generic_search_term: 'nothing like it' }), []);
    assert.equal(await search({ room_types: ['m.space'] }), [space]);
    assert.equal(await search({ room_types: [null] }), [big, mid]);
    assert.equal(ok(await api(s2, a, 'POST', '/publicRooms', { third_party_instance_id: 'irc' })).chunk, []);

    assertError(await api(s2, null, 'POST', '/publicRooms', {}), 401, 'M_MISSING_TOKEN');
    assertError(await api(s2, a, 'GET', '/publicRooms?server=other.example'), 400, 'M_INVALID_PARAM');
    ok(await api(s2, a, 'GET', '/publicRooms?server=hearth.test'));
    assertError(await api(s2, a, 'GET', '/publicRooms?since=garbage'), 400, 'M_INVALID_PARAM');
    assertError(await api(s2, a, 'GET', '/publicRooms?limit=-1'), 400, 'M_INVALID_PARAM');
    assertError(await api(s2, a, 'POST', '/publicRooms', { limit: 'ten' }), 400, 'M_BAD_JSON');
    assertError(await api(s2, a, 'POST', '/publicRooms', { filter: { room_types: [1] } }), 400, 'M_BAD_JSON');
    assertError(await api(s2, a, 'POST', '/publicRooms', { include_all_networks: true, third_party_instance_id: 'irc' }), 400, 'M_INVALID_PARAM');
  } finally {
    await s2.close();
  }
});

t.run();
