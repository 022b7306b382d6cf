// The real matrix-js-sdk (37.x) and push rule counts: bob's client sees
// room.getUnreadNotificationCount('total'/'highlight') rise with alice's messages and a mention
// (unread_notifications in /sync), and fall to 0 after client.sendReadReceipt.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { beforeAll } from './support/hooks.js';
import { createRoom, join, send } from './support/rooms.js';
import { clientFor, quietSdk, sdkSuite, startSynced, waitUntil } from './support/sdk.js';

quietSdk();

const t = sdkSuite('matrix-js-sdk 37: unread notification counts', ['alice', 'bob']);
const c = {} as { roomId: string; b: sdk.MatrixClient };

beforeAll(t, async (ctx) => {
  c.roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat', name: 'Counts' });
  await join(ctx.s, ctx.bob, c.roomId);
  c.b = clientFor(ctx.baseUrl, ctx.bob);
  ctx.clients.push(c.b);
  await startSynced(c.b);
});

t("alice's messages and a mention raise bob's counts; his read receipt clears them", async ({ s, alice, bob }) => {
  const { b, roomId } = c;
  const room = () => b.getRoom(roomId);
  const total = () => room()?.getUnreadNotificationCount(sdk.NotificationCountType.Total) ?? -1;
  const highlight = () => room()?.getUnreadNotificationCount(sdk.NotificationCountType.Highlight) ?? -1;
  const events = [sdk.RoomEvent.UnreadNotifications, sdk.RoomEvent.Timeline, sdk.ClientEvent.Sync];
  await waitUntil(b, events, () => total() === 0, 'the room at bob with nothing unread');

  await send(s, alice, roomId, 'one');
  await send(s, alice, roomId, 'two');
  await waitUntil(b, events, () => total() === 2, "two of alice's messages counted");
  assert.is(highlight(), 0);

  const mentionId = await send(s, alice, roomId, { msgtype: 'm.text', body: `look ${bob.user_id}`, 'm.mentions': { user_ids: [bob.user_id] } });
  await waitUntil(b, events, () => total() === 3 && highlight() === 1, 'the mention counted and highlighted');

  await waitUntil(b, [sdk.RoomEvent.Timeline], () => !!room()?.findEventById(mentionId), 'the mention in bob\'s timeline');
  await b.sendReadReceipt(room()!.findEventById(mentionId)!);
  await waitUntil(b, events, () => total() === 0 && highlight() === 0, 'the counts back to 0 after the receipt');
});

t.run();
