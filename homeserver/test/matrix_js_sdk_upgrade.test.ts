// The real matrix-js-sdk (37.x) with room upgrades and spaces: alice upgrades with client.upgradeRoom,
// bob's syncing client sees the tombstone, joins the replacement and links both rooms
// (findPredecessor, getRoomUpgradeHistory with verified links); client.getRoomHierarchy walks a space.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { createRoom, join, putState } from './support/rooms.js';
import { clientFor, quietSdk, sdkSuite, startSynced, waitUntil } from './support/sdk.js';

quietSdk();

const t = sdkSuite('matrix-js-sdk 37: room upgrades and spaces', ['alice', 'bob']);

t('client.upgradeRoom: bob sees the tombstone, joins the replacement, and the SDK links the rooms', async (ctx) => {
  const roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat', name: 'Before', room_version: '10' });
  await join(ctx.s, ctx.bob, roomId);
  const alice = clientFor(ctx.baseUrl, ctx.alice);
  const bob = clientFor(ctx.baseUrl, ctx.bob);
  ctx.clients.push(alice, bob);
  await startSynced(bob);

  const { replacement_room: newId } = await alice.upgradeRoom(roomId, '11');
  const tombstoneAt = () => bob.getRoom(roomId)?.currentState.getStateEvents('m.room.tombstone', '');
  await waitUntil(bob, [sdk.RoomStateEvent.Events, sdk.ClientEvent.Sync], () => tombstoneAt() !== null && tombstoneAt() !== undefined, 'the tombstone at bob');
  assert.is(tombstoneAt()!.getContent().replacement_room, newId);

  await bob.joinRoom(newId);
  await waitUntil(bob, [sdk.ClientEvent.Room, sdk.ClientEvent.Sync], () => bob.getRoom(newId)?.getMyMembership() === 'join', 'bob in the new room');
  const fresh = bob.getRoom(newId)!;
  assert.equal(fresh.findPredecessor(), { roomId, eventId: fresh.findPredecessor()!.eventId });
  assert.type(fresh.findPredecessor()!.eventId, 'string');
  assert.is(fresh.name, 'Before', 'the name came along');
  assert.equal(bob.getRoomUpgradeHistory(newId, true).map((r) => r.roomId), [roomId, newId], 'verified both ways');
});

t('client.getRoomHierarchy walks a space', async (ctx) => {
  const child = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat', name: 'Child' });
  const space = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' } });
  await putState(ctx.s, ctx.alice, space, 'm.space.child', child, { via: ['hearth.test'], suggested: true });
  const bob = clientFor(ctx.baseUrl, ctx.bob);
  ctx.clients.push(bob);
  const res = await bob.getRoomHierarchy(space, 10, 3, false);
  assert.equal(res.rooms.map((r) => r.room_id), [space, child]);
  assert.is(res.rooms[0]!.room_type, 'm.space');
  assert.is(res.rooms[0]!.children_state[0]!.state_key, child);
  assert.is(res.rooms[1]!.name, 'Child');
});

t.run();
