// The real matrix-js-sdk (37.x) and presence: alice sets her presence with client.setPresence, and
// bob's syncing client sees it on its User object (the User.presence event), and reads it back
// with client.getPresence.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { beforeAll } from './support/hooks.js';
import { createRoom, join } from './support/rooms.js';
import { clientFor, quietSdk, sdkSuite, startSynced, waitUntil } from './support/sdk.js';

quietSdk();

const t = sdkSuite('matrix-js-sdk 37: presence', ['alice', 'bob']);

beforeAll(t, async (ctx) => {
  const roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat' });
  await join(ctx.s, ctx.bob, roomId);
});

t("bob's client sees alice's presence change set through client.setPresence", async (ctx) => {
  const alice = clientFor(ctx.baseUrl, ctx.alice);
  const bob = clientFor(ctx.baseUrl, ctx.bob);
  ctx.clients.push(alice, bob);
  await startSynced(bob);
  const aliceId = ctx.alice.user_id;
  // Alice's join made her online; bob's initial sync carried it.
  await waitUntil(bob, [sdk.UserEvent.Presence], () => bob.getUser(aliceId)?.presence === 'online', "alice's presence at bob");

  let event: sdk.MatrixEvent | undefined;
  bob.on(sdk.UserEvent.Presence, (e, user) => {
    if (user.userId === aliceId) event = e;
  });
  await alice.setPresence({ presence: 'unavailable', status_msg: 'in a meeting' });
  await waitUntil(bob, [sdk.UserEvent.Presence], () => bob.getUser(aliceId)?.presence === 'unavailable', "alice's unavailable at bob");
  const user = bob.getUser(aliceId)!;
  assert.is(user.presenceStatusMsg, 'in a meeting');
  assert.not.ok(user.currentlyActive, 'currently_active is only sent with online');
  assert.is(event?.getType(), 'm.presence');
  assert.is(event?.getSender(), aliceId);

  await alice.setPresence({ presence: 'online', status_msg: 'back' });
  await waitUntil(bob, [sdk.UserEvent.Presence], () => bob.getUser(aliceId)?.presence === 'online', "alice back online at bob");
  assert.is(bob.getUser(aliceId)!.presenceStatusMsg, 'back');
  assert.is(bob.getUser(aliceId)!.currentlyActive, true);

  const fetched = await bob.getPresence(aliceId);
  assert.is(fetched.presence, 'online');
  assert.is(fetched.status_msg, 'back');
});

t.run();
