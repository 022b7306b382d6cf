import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { eventIdFor, verifyEventHashAndSignature } from '../src/services/rooms/event_format.js';
import { encodeCanonicalJson, parseStrictJson } from '../src/core/canonical_json.js';
import { ServerSigningKey } from '../src/services/rooms/signing_key.js';

const t = suite<{ s: TestServer }>('the stored event graph: signed, hashed, linked');

t.before(async (ctx) => {
  ctx.s = await startTestServer();
});
t.after(async (ctx) => {
  await ctx.s.close();
});

for (const version of ['10', '11'] as const) {
  t(`room v${version}: every stored event verifies with the server's key and its id is its reference hash`, async ({ s }) => {
    const alice = await registerUser(s, `alice${version}`);
    const created = await s.request('POST', '/_matrix/client/v3/createRoom', {
      token: alice.access_token,
      body: { room_version: version, name: 'graph', topic: 't' },
    });
    assert.is(created.status, 200);
    const roomId = created.body.room_id as string;
    for (let i = 0; i < 3; i++) {
      await s.request('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/g${i}`, {
        token: alice.access_token,
        body: { msgtype: 'm.text', body: `message ${i}` },
      });
    }
    // The key as another server would learn it: loaded afresh from storage, public half only.
    const key = await ServerSigningKey.load(s.hs.deps.db, s.config.serverName);
    const rows = await s.hs.deps.db.query<{ event_id: string; json: string; stream_ordering: string }>(
      'select event_id, json, stream_ordering from events where room_id = ? order by stream_ordering',
      [roomId],
    );
    assert.ok(rows.length >= 10, 'creation events plus three messages');
    const seen = new Set<string>();
    let prevDepth = 0;
    for (const row of rows) {
      const pdu = parseStrictJson(row.json) as Record<string, any>;
      assert.is(encodeCanonicalJson(pdu), row.json, 'stored text is exactly canonical JSON');
      assert.is(pdu.event_id, undefined, 'v4+ PDUs carry no event_id');
      assert.is(eventIdFor(pdu, version), row.event_id);
      const check = verifyEventHashAndSignature(pdu, version, s.config.serverName, key.keyId, key.publicKeyBase64);
      assert.ok(check.signatureValid, `signature of ${row.event_id}`);
      assert.ok(check.hashValid, `content hash of ${row.event_id}`);
      for (const id of [...pdu.prev_events, ...pdu.auth_events]) assert.ok(seen.has(id), 'prev/auth events precede the event');
      assert.ok(pdu.depth > prevDepth, 'depth grows along the linear history');
      prevDepth = pdu.depth;
      if (pdu.type === 'm.room.create') {
        assert.is(pdu.content.room_version, version);
        assert.is(pdu.content.creator !== undefined, version === '10', 'creator only in v10 create content');
      } else {
        assert.ok(pdu.auth_events.length > 0);
      }
      seen.add(row.event_id);
    }
  });
}

t('a tampered stored event no longer verifies', async ({ s }) => {
  const key = await ServerSigningKey.load(s.hs.deps.db, s.config.serverName);
  const [row] = await s.hs.deps.db.query<{ json: string }>(`select json from events where type = 'm.room.message' limit 1`);
  const pdu = parseStrictJson(row!.json) as Record<string, any>;
  pdu.content.body = 'changed';
  const check = verifyEventHashAndSignature(pdu, '11', s.config.serverName, key.keyId, key.publicKeyBase64);
  assert.not.ok(check.hashValid);
});

t.run();
