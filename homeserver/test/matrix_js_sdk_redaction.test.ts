// The real matrix-js-sdk (37.x) and redactions: alice redacts her message with client.redactEvent,
// and bob's syncing client sees the event in his live timeline redacted (isRedacted(), content
// emptied, the redaction in unsigned.redacted_because), as does a client started afterwards.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { createRoom, join } from './support/rooms.js';
import { clientFor, quietSdk, sdkSuite, startSynced, waitUntil } from './support/sdk.js';

quietSdk();

const t = sdkSuite('matrix-js-sdk 37: redaction', ['alice', 'bob']);

const findEvent = (client: sdk.MatrixClient, roomId: string, eventId: string) =>
  client.getRoom(roomId)?.getLiveTimeline().getEvents().find((e) => e.getId() === eventId);

t("alice's client.redactEvent: bob's client sees the event redacted", async (ctx) => {
  const roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat' });
  await join(ctx.s, ctx.bob, roomId);
  const alice = clientFor(ctx.baseUrl, ctx.alice);
  const bob = clientFor(ctx.baseUrl, ctx.bob);
  ctx.clients.push(alice, bob);
  await startSynced(bob);

  const { event_id: eventId } = await alice.sendTextMessage(roomId, 'regrettable');
  await waitUntil(bob, [sdk.RoomEvent.Timeline], () => findEvent(bob, roomId, eventId)?.getContent().body === 'regrettable', 'the message at bob');
  const seen = findEvent(bob, roomId, eventId)!;
  assert.not.ok(seen.isRedacted());

  const { event_id: redactionId } = await alice.redactEvent(roomId, eventId, undefined, { reason: 'typo' });
  await waitUntil(bob, [sdk.RoomEvent.Redaction, sdk.RoomEvent.Timeline], () => findEvent(bob, roomId, eventId)?.isRedacted() === true, 'the redaction at bob');
  const redacted = findEvent(bob, roomId, eventId)!;
  assert.equal(redacted.getContent(), {}, 'content emptied');
  assert.is(redacted.getType(), 'm.room.message', 'the event stays, as a redacted one');
  const because = redacted.getUnsigned().redacted_because;
  assert.ok(because, 'redacted_because present');
  assert.is(because!.event_id, redactionId);
  assert.is(because!.sender, ctx.alice.user_id);
  assert.is(because!.content.reason, 'typo');

  // A client that starts afterwards gets the event from the server already redacted.
  const late = clientFor(ctx.baseUrl, ctx.bob);
  ctx.clients.push(late);
  await startSynced(late);
  const fromServer = findEvent(late, roomId, eventId);
  assert.ok(fromServer, 'in the initial sync timeline');
  assert.ok(fromServer!.isRedacted());
  assert.equal(fromServer!.getContent(), {});
  assert.is(fromServer!.getUnsigned().redacted_because?.event_id, redactionId);
});

t.run();
