// POST /rooms/{roomId}/upgrade (spec: room upgrades; room_upgrades.yaml): permission, supported
// versions, predecessor and room type, the copied state (power levels restored after the
// upgrader's temporary raise), bans, aliases moved, the tombstone and the old room restricted.
import * as assert from 'uvu/assert';
import { api, assertError, createRoom, enc, invite, join, ok, putState, send, stateMap, suiteWithUsers } from './support/rooms.js';

const t = suiteWithUsers('room upgrades', ['alice', 'bob', 'carol', 'mallory']);

const upgrade = (ctx: any, u: any, roomId: string, body: unknown) => api(ctx.s, u, 'POST', `/rooms/${enc(roomId)}/upgrade`, body);

t('non-members, members without the tombstone level, and unknown versions are refused', async (ctx) => {
  const roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat' });
  await join(ctx.s, ctx.bob, roomId);
  assertError(await upgrade(ctx, ctx.mallory, roomId, { new_version: '11' }), 403, 'M_FORBIDDEN', 'not in the room');
  assertError(await upgrade(ctx, ctx.bob, roomId, { new_version: '11' }), 403, 'M_FORBIDDEN', 'level 0 < tombstone 100');
  assertError(await upgrade(ctx, ctx.alice, roomId, { new_version: '9' }), 400, 'M_UNSUPPORTED_ROOM_VERSION');
  assertError(await upgrade(ctx, ctx.alice, roomId, { new_version: 'zz' }), 400, 'M_UNSUPPORTED_ROOM_VERSION');
  assertError(await upgrade(ctx, ctx.alice, roomId, {}), 400, 'M_MISSING_PARAM');
  assertError(await upgrade(ctx, ctx.alice, '!nowhere:hearth.test', { new_version: '11' }), 403, 'M_FORBIDDEN');
  // Nothing happened: no tombstone in the room.
  assert.not.ok((await stateMap(ctx.s, ctx.alice, roomId)).has('m.room.tombstone|'));
});

t('the replacement room: predecessor, type, copied state, bans, aliases, tombstone, restricted old room', async (ctx) => {
  const { s, alice, bob, carol, mallory } = ctx;
  const oldId = await createRoom(s, alice, {
    room_version: '10',
    preset: 'public_chat',
    room_alias_name: 'upgraded',
    name: 'Old name',
    topic: 'Old topic',
    creation_content: { type: 'org.example.kind', 'm.federate': true },
    power_level_content_override: { users: { [alice.user_id]: 100, [bob.user_id]: 100 } },
  });
  ok(await api(s, alice, 'PUT', `/directory/list/room/${enc(oldId)}`, { visibility: 'public' }));
  ok(await api(s, alice, 'PUT', `/directory/room/${enc('#second:hearth.test')}`, { room_id: oldId }));
  await putState(s, alice, oldId, 'm.room.canonical_alias', '', { alias: '#upgraded:hearth.test', alt_aliases: ['#second:hearth.test'] });
  await putState(s, alice, oldId, 'm.room.avatar', '', { url: 'mxc://hearth.test/avatar' });
  await putState(s, alice, oldId, 'm.room.history_visibility', '', { history_visibility: 'world_readable' });
  await putState(s, alice, oldId, 'm.room.guest_access', '', { guest_access: 'can_join' });
  await putState(s, alice, oldId, 'm.room.encryption', '', { algorithm: 'm.megolm.v1.aes-sha2' });
  await putState(s, alice, oldId, 'm.room.server_acl', '', { allow: ['*'], deny: ['evil.example'], allow_ip_literals: false });
  await putState(s, alice, oldId, 'm.room.pinned_events', '', { pinned: ['$x:hearth.test'] });
  await putState(s, alice, oldId, 'org.example.custom', '', { not: 'copied' });
  // Power levels in which a copied event needs more than the upgrader (bob, 100) has: the raise.
  const oldState = await stateMap(s, alice, oldId);
  const plContent = { ...oldState.get('m.room.power_levels|').content, events: { ...oldState.get('m.room.power_levels|').content.events, 'm.room.server_acl': 100, 'm.room.pinned_events': 100, 'm.room.tombstone': 100 } };
  await putState(s, alice, oldId, 'm.room.power_levels', '', plContent);
  await join(s, bob, oldId);
  await join(s, carol, oldId);
  await join(s, mallory, oldId);
  ok(await api(s, alice, 'POST', `/rooms/${enc(oldId)}/ban`, { user_id: mallory.user_id, reason: 'spam' }));
  const lastBefore = await send(s, carol, oldId, 'last words');

  const res = ok(await upgrade(ctx, bob, oldId, { new_version: '11' }), 'upgrade');
  const newId = res.replacement_room as string;
  assert.type(newId, 'string');
  assert.is.not(newId, oldId);

  // The old room: tombstone naming the new room, restricted power levels, alias gone from canonical_alias.
  const old = await stateMap(s, carol, oldId);
  const tomb = old.get('m.room.tombstone|');
  assert.ok(tomb, 'tombstone');
  assert.is(tomb.content.replacement_room, newId);
  assert.is(tomb.sender, bob.user_id);
  const oldPl = old.get('m.room.power_levels|').content;
  assert.is(oldPl.events_default, 50, 'events_default raised to max(50, users_default + 1)');
  assert.is(oldPl.invite, 50, 'invite raised');
  assert.equal(old.get('m.room.canonical_alias|').content, {}, 'the canonical alias left the old room');
  assertError(await api(s, carol, 'PUT', `/rooms/${enc(oldId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'still here?' }), 403, 'M_FORBIDDEN', 'ordinary members can no longer talk');
  const dirOld = ok(await api(s, alice, 'GET', `/directory/list/room/${enc(oldId)}`));
  assert.is(dirOld.visibility, 'private', 'the old room left the directory');

  // The new room, as seen by bob (the upgrader, joined) and by a world-readable visitor.
  const fresh = await stateMap(s, bob, newId);
  const create = fresh.get('m.room.create|');
  assert.is(create.content.room_version, '11');
  assert.equal(create.content.predecessor, { room_id: oldId, event_id: lastBefore });
  assert.is(create.content.type, 'org.example.kind', 'room type copied (v1.4)');
  assert.is(create.content['m.federate'], true);
  assert.is(create.content.creator, undefined, 'v11 has no creator');
  assert.is(create.sender, bob.user_id);
  assert.is(fresh.get(`m.room.member|${bob.user_id}`).content.membership, 'join');
  assert.not.ok(fresh.has(`m.room.member|${alice.user_id}`), 'other members are not moved');
  assert.is(fresh.get('m.room.name|').content.name, 'Old name');
  assert.is(fresh.get('m.room.topic|').content.topic, 'Old topic');
  assert.is(fresh.get('m.room.avatar|').content.url, 'mxc://hearth.test/avatar');
  assert.is(fresh.get('m.room.join_rules|').content.join_rule, 'public');
  assert.is(fresh.get('m.room.history_visibility|').content.history_visibility, 'world_readable');
  assert.is(fresh.get('m.room.guest_access|').content.guest_access, 'can_join');
  assert.is(fresh.get('m.room.encryption|').content.algorithm, 'm.megolm.v1.aes-sha2');
  assert.equal(fresh.get('m.room.server_acl|').content.deny, ['evil.example']);
  assert.equal(fresh.get('m.room.pinned_events|').content.pinned, ['$x:hearth.test']);
  assert.not.ok(fresh.has('org.example.custom|'), 'non-m. state is not copied');
  // Power levels: the old ones exactly (the upgrader's temporary raise undone).
  assert.equal(fresh.get('m.room.power_levels|').content, plContent);
  assert.is(fresh.get(`m.room.member|${mallory.user_id}`).content.membership, 'ban', 'bans copied');
  assert.is(fresh.get(`m.room.member|${mallory.user_id}`).content.reason, 'spam');
  assert.not.ok(fresh.has(`m.room.member|${carol.user_id}`));
  assert.equal(fresh.get('m.room.canonical_alias|').content, { alias: '#upgraded:hearth.test', alt_aliases: ['#second:hearth.test'] });
  // Aliases resolve to the new room; the directory lists the new room instead.
  for (const a of ['#upgraded:hearth.test', '#second:hearth.test']) {
    assert.is(ok(await api(s, carol, 'GET', `/directory/room/${enc(a)}`)).room_id, newId, a);
  }
  assert.is(ok(await api(s, alice, 'GET', `/directory/list/room/${enc(newId)}`)).visibility, 'public');
  // The banned user cannot join the new room; carol can.
  assertError(await api(s, mallory, 'POST', `/join/${enc(newId)}`, {}), 403, 'M_FORBIDDEN', 'banned in the new room');
  await join(s, carol, newId);
  // bob already had every level the copy needs: one power levels event, no raise.
  const msgs = ok(await api(s, bob, 'GET', `/rooms/${enc(newId)}/messages?dir=f&limit=100`));
  assert.is(msgs.chunk.filter((e: any) => e.type === 'm.room.power_levels').length, 1);
});

t('an upgrader below the level of some copied state is raised while copying, then restored', async (ctx) => {
  const { s, alice, bob } = ctx;
  // bob may send the tombstone (50) but server_acl needs 100: he is raised to 100 for the copy.
  const oldId = await createRoom(s, alice, {
    preset: 'private_chat',
    invite: [bob.user_id],
    power_level_content_override: { users: { [alice.user_id]: 100, [bob.user_id]: 50 }, events: { 'm.room.tombstone': 50, 'm.room.server_acl': 100, 'm.room.power_levels': 100 } },
  });
  await join(s, bob, oldId);
  await putState(s, alice, oldId, 'm.room.server_acl', '', { allow: ['*'], deny: ['bad.example'] });
  const res = ok(await upgrade(ctx, bob, oldId, { new_version: '11' }));
  const newId = res.replacement_room;
  const fresh = await stateMap(s, bob, newId);
  assert.equal(fresh.get('m.room.server_acl|').content.deny, ['bad.example'], 'copied thanks to the raise');
  assert.is(fresh.get('m.room.power_levels|').content.users[bob.user_id], 50, 'restored after the copy');
  const msgs = ok(await api(s, bob, 'GET', `/rooms/${enc(newId)}/messages?dir=f&limit=100`));
  const pls = msgs.chunk.filter((e: any) => e.type === 'm.room.power_levels').map((e: any) => e.content.users[bob.user_id]);
  assert.equal(pls, [100, 50], 'raised, then restored');
  // bob could not change the old room's power levels (needs 100): the upgrade still succeeded.
  const old = await stateMap(s, alice, oldId);
  assert.is(old.get('m.room.tombstone|').content.replacement_room, newId);
  assert.is(old.get('m.room.power_levels|').content.events_default, 0, 'not restricted: bob may not');
});

t('a space stays a space, with its children', async (ctx) => {
  const { s, alice } = ctx;
  const child = await createRoom(s, alice, { preset: 'public_chat' });
  const space = await createRoom(s, alice, { preset: 'public_chat', creation_content: { type: 'm.space' } });
  await putState(s, alice, space, 'm.space.child', child, { via: ['hearth.test'], order: 'a' });
  const newId = ok(await upgrade(ctx, alice, space, { new_version: '11' })).replacement_room;
  const fresh = await stateMap(s, alice, newId);
  assert.is(fresh.get('m.room.create|').content.type, 'm.space');
  assert.equal(fresh.get(`m.space.child|${child}`).content, { via: ['hearth.test'], order: 'a' });
});

t('a v10 replacement names its creator; a room without a type gets none', async (ctx) => {
  const { s, alice } = ctx;
  const oldId = await createRoom(s, alice, {});
  const newId = ok(await upgrade(ctx, alice, oldId, { new_version: '10' })).replacement_room;
  const create = (await stateMap(s, alice, newId)).get('m.room.create|').content;
  assert.is(create.room_version, '10');
  assert.is(create.creator, alice.user_id);
  assert.not.ok('type' in create);
  await invite(s, alice, newId, ctx.bob.user_id);
});

t.run();
