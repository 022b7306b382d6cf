// The real matrix-js-sdk (37.x) reading relations from a homeserver on a real port: paginating
// reactions through `client.relations()` (the /v1 relations endpoint), and the bundled edit and
// thread aggregations as the SDK's MatrixEvent exposes them. Events are sent through the API.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { createRoom, join, send } from './support/rooms.js';
import { clientFor, quietSdk, sdkSuite } from './support/sdk.js';

quietSdk();

const t = sdkSuite('matrix-js-sdk 37: relations', ['alice', 'bob']);

t('reactions page through client.relations(); edits and thread summaries are bundled aggregations', async ({ s, baseUrl, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  const root = await send(s, alice, roomId, 'hello');
  const reactions: string[] = [];
  for (const key of ['👍', '🎉', '❤️']) {
    reactions.push(await send(s, bob, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: root, key } }, 'm.reaction'));
  }
  const edit = await send(s, alice, roomId, {
    msgtype: 'm.text', body: '* hello there', 'm.new_content': { msgtype: 'm.text', body: 'hello there' }, 'm.relates_to': { rel_type: 'm.replace', event_id: root },
  });
  const reply = await send(s, bob, roomId, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });

  const client = clientFor(baseUrl, bob);
  const first = await client.relations(roomId, root, 'm.annotation', 'm.reaction', { dir: sdk.Direction.Backward, limit: 2 });
  assert.is(first.originalEvent?.getId(), root);
  assert.equal(first.events.map((e) => e.getId()), [reactions[2], reactions[1]]);
  assert.ok(first.nextBatch);
  const second = await client.relations(roomId, root, 'm.annotation', 'm.reaction', { dir: sdk.Direction.Backward, limit: 2, from: first.nextBatch! });
  assert.equal(second.events.map((e) => e.getId()), [reactions[0]]);
  assert.is(second.nextBatch, null);
  assert.equal(second.events[0]!.getRelation(), { rel_type: 'm.annotation', event_id: root, key: '👍' });

  const original = first.originalEvent!;
  assert.is((original.getServerAggregatedRelation('m.replace') as { event_id: string } | undefined)?.event_id, edit);
  const thread = original.getServerAggregatedRelation<{ count: number; latest_event: { event_id: string }; current_user_participated: boolean }>('m.thread');
  assert.is(thread?.count, 1);
  assert.is(thread?.latest_event.event_id, reply);
  assert.is(thread?.current_user_participated, true);
  const inThread = await client.relations(roomId, root, 'm.thread', null);
  assert.equal(inThread.events.map((e) => e.getId()), [reply]);
});

t.run();
