import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeCanonicalJson, parseStrictJson } from '../src/core/canonical_json.js';
import { createLogger } from '../src/core/logger.js';
import { decodeBase64, encodeBase64, privateKeyFromSeed, publicKeyBytes, verifyJsonSignature } from '../src/core/signing.js';
import {
  EventFormatError,
  MAX_PDU_BYTES,
  checkContentHash,
  checkEvent,
  checkEventShape,
  checkEventSize,
  computeContentHash,
  eventIdFor,
  redact,
  signEvent,
  verifyEventHashAndSignature,
} from '../src/services/rooms/event_format.js';
import { SIGNING_KEY_SECRET, ServerSigningKey } from '../src/services/rooms/signing_key.js';
import { Database } from '../src/storage/db.js';
import { createTestDatabase } from './support/harness.js';

// Appendix "Cryptographic Test Vectors": seed, server name "domain", key id "ed25519:1".
const KEY = privateKeyFromSeed(decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'));
const PUBLIC = encodeBase64(publicKeyBytes(KEY));
const sign = (ev: object, v: '10' | '11') => signEvent(ev, v, 'domain', 'ed25519:1', KEY);
const check = (ev: object, v: '10' | '11') => verifyEventHashAndSignature(ev, v, 'domain', 'ed25519:1', PUBLIC);

const MINIMAL = {
  room_id: '!x:domain',
  sender: '@a:domain',
  origin: 'domain',
  origin_server_ts: 1000000,
  signatures: {},
  hashes: {},
  type: 'X',
  content: {},
  prev_events: [],
  auth_events: [],
  depth: 3,
  unsigned: { age_ts: 1000000 },
};

const REDACTABLE = {
  content: { body: 'Here is the message content' },
  event_id: '$0:domain',
  origin: 'domain',
  origin_server_ts: 1000000,
  type: 'm.room.message',
  room_id: '!r:domain',
  sender: '@u:domain',
  signatures: {},
  unsigned: { age_ts: 1000000 },
};

// The spec's vectors predate v11 and keep `origin`, so v10's redaction reproduces them.
test('spec event signing vector: minimally-sized event (v10 redaction)', () => {
  const input = structuredClone(MINIMAL);
  const signed = sign(input, '10');
  assert.equal(input, MINIMAL, 'input not modified');
  assert.equal(signed, {
    auth_events: [],
    content: {},
    depth: 3,
    hashes: { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' },
    origin: 'domain',
    origin_server_ts: 1000000,
    prev_events: [],
    room_id: '!x:domain',
    sender: '@a:domain',
    signatures: {
      domain: {
        'ed25519:1': 'KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg',
      },
    },
    type: 'X',
    unsigned: { age_ts: 1000000 },
  });
  assert.equal(check(signed, '10'), { signatureValid: true, hashValid: true });
});

test('spec event signing vector: event with redactable content (v10 redaction)', () => {
  const signed = sign(REDACTABLE, '10');
  assert.equal(signed, {
    content: { body: 'Here is the message content' },
    event_id: '$0:domain',
    hashes: { sha256: 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g' },
    origin: 'domain',
    origin_server_ts: 1000000,
    type: 'm.room.message',
    room_id: '!r:domain',
    sender: '@u:domain',
    signatures: {
      domain: {
        'ed25519:1': 'Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA',
      },
    },
    unsigned: { age_ts: 1000000 },
  });
  assert.equal(check(signed, '10'), { signatureValid: true, hashValid: true });
});

test('v11 signs without `origin`: same content hash, different signature (cross-checked in Python)', () => {
  const signed = sign(MINIMAL, '11');
  assert.is(signed.hashes.sha256, '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos');
  // Computed independently with Python's json.dumps(sort_keys) + `cryptography` Ed25519.
  assert.is(
    signed.signatures.domain!['ed25519:1'],
    'Jxp+1glFcZM+nnHpY0EkedRR7u0VmKsJYGnQqIvqus3UvL5X/p1y6wSkLhGoTBel6MZ9lrMIzUqrjqFquWJKBw',
  );
  assert.equal(check(signed, '11'), { signatureValid: true, hashValid: true });
  assert.equal(check(signed, '10'), { signatureValid: false, hashValid: true }, 'a v11 signature is not a v10 one');
  // Same Python cross-check for the reference hashes.
  assert.is(eventIdFor(signed, '11'), '$70O_oKlXzFbkfu0KE88USi98DjSWrOELrPj-8tisl8I');
  assert.is(eventIdFor(signed, '10'), '$8yif6p8EqgoSten2BLje9ntKm720NyFLWQv9tn8memc');
});

// A real event created by Synapse on jki.re (room version 5, whose redaction rules for this
// event equal v10's); its published event id in the v4+ format comes from gomatrixserverlib's
// eventversion_test.go.
const JKI_CREATE = `{"auth_events": [], "prev_events": [], "type": "m.room.create", "room_id": "!uXDCzlYgCTHtiWCkEx:jki.re", "sender": "@erikj:jki.re", "content": {"room_version": "5", "predecessor": {"room_id": "!gdRMqOrTFdOCYHNwOo:half-shot.uk", "event_id": "$LP7ROBc4b+cMc1UE9haIz8q5AK2AIW4eJ90FfKLvyZI"}, "creator": "@erikj:jki.re"}, "depth": 1, "prev_state": [], "state_key": "", "origin": "jki.re", "origin_server_ts": 1560284621137, "hashes": {"sha256": "IX6zuNiJpJPNf70BLleL3HSCpjKeq9Uhu7uUpyDjBmc"}, "signatures": {"jki.re": {"ed25519:auto": "O4IyFfF2PPtGp5uaDm8t57dZbdh8vc8Q64LgCwvzYRVItAMI0uisfiAFaxkVT7MRpzh6N2QNN5NMRXZKmgPYDA"}}, "unsigned": {"age": 1321650}}`;

test('event id of a real Synapse event; content hash verifies; v11 keeps all create content', () => {
  const ev = parseStrictJson(JKI_CREATE) as Record<string, any>;
  assert.ok(checkContentHash(ev));
  assert.is(eventIdFor(ev, '10'), '$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438');
  assert.is(eventIdFor(ev, '11'), '$N6v80PuxJXKlWBWY4TT4LVc68JvUnuyz2AmAykTcJco'); // Python cross-check
  // Only redaction-surviving fields move the id: v10 drops room_version, v11 keeps it.
  const changed = { ...ev, content: { ...ev.content, room_version: '6' }, unsigned: {}, signatures: {} };
  assert.is(eventIdFor(changed, '10'), eventIdFor(ev, '10'));
  assert.is.not(eventIdFor(changed, '11'), eventIdFor(ev, '11'));
  assert.not.ok(checkContentHash(changed));
  // An attached event_id (RoomEvent) is not part of its own hash.
  assert.is(eventIdFor({ ...ev, event_id: '$anything' }, '10'), eventIdFor(ev, '10'));
  // Unknown top-level keys are redacted away before hashing.
  assert.is(eventIdFor({ ...ev, extra_top_level: 1 }, '11'), eventIdFor(ev, '11'));
});

test('content hash ignores unsigned/signatures/hashes and nothing else', () => {
  const base = computeContentHash(MINIMAL);
  assert.equal(computeContentHash({ ...MINIMAL, unsigned: { x: 1 }, signatures: { a: {} }, hashes: { sha256: 'x' } }), base);
  assert.not.equal(computeContentHash({ ...MINIMAL, depth: 4 }), base);
  assert.not.equal(computeContentHash({ ...MINIMAL, extra: true }), base);
});

test('verification: full and redacted copies, tampering with kept and with stripped fields', () => {
  const ev = sign({ ...MINIMAL, type: 'm.room.message', content: { body: 'hi', msgtype: 'm.text' } }, '11');
  assert.equal(check(ev, '11'), { signatureValid: true, hashValid: true });
  // A redacted copy still carries a good signature but no longer matches its content hash.
  assert.equal(check(redact(ev, '11'), '11'), { signatureValid: true, hashValid: false });
  // Changing redactable content: signature holds, hash fails -> the spec says use the redacted copy.
  assert.equal(check({ ...ev, content: { body: 'bye', msgtype: 'm.text' } }, '11'), { signatureValid: true, hashValid: false });
  // Changing a protected field breaks the signature.
  assert.is(check({ ...ev, depth: 4 }, '11').signatureValid, false);
  assert.is(check({ ...ev, hashes: { sha256: 'AAAA' } }, '11').signatureValid, false);
  // Unsigned data can change freely.
  assert.equal(check({ ...ev, unsigned: { age: 5 } }, '11'), { signatureValid: true, hashValid: true });
  // Other servers' signatures are kept by signing, and do not disturb ours.
  const cosigned = signEvent(ev, '11', 'other.example', 'ed25519:k', privateKeyFromSeed(Buffer.alloc(32, 1)));
  assert.ok(cosigned.signatures.domain && cosigned.signatures['other.example']);
  assert.equal(check(cosigned, '11'), { signatureValid: true, hashValid: true });
  assert.ok(verifyJsonSignature(redact(cosigned, '11'), 'domain', 'ed25519:1', PUBLIC));
  // Padded hashes are accepted (decoders SHOULD accept padding).
  assert.ok(checkContentHash({ ...ev, hashes: { sha256: ev.hashes.sha256 + '=' } }));
  assert.not.ok(checkContentHash({ ...ev, hashes: {} }));
});

// ---- redaction algorithm ----

const ALL_TOP = {
  event_id: '$e', type: 'T', room_id: '!r:s', sender: '@u:s', state_key: '', content: {}, hashes: { sha256: 'h' },
  signatures: { s: { 'ed25519:1': 'x' } }, depth: 1, prev_events: ['$p'], prev_state: [], auth_events: ['$a'],
  origin: 's', origin_server_ts: 1, membership: 'join', unsigned: { age: 1 }, redacts: '$x', extra: 'gone',
};

test('redaction: top-level keys for v10 (v9 list) and v11', () => {
  assert.equal(Object.keys(redact(ALL_TOP, '10')).sort(), [
    'auth_events', 'content', 'depth', 'event_id', 'hashes', 'membership', 'origin', 'origin_server_ts',
    'prev_events', 'prev_state', 'room_id', 'sender', 'signatures', 'state_key', 'type',
  ]);
  assert.equal(Object.keys(redact(ALL_TOP, '11')).sort(), [
    'auth_events', 'content', 'depth', 'event_id', 'hashes', 'origin_server_ts', 'prev_events', 'room_id',
    'sender', 'signatures', 'state_key', 'type',
  ]);
  assert.equal(redact({ type: 'T' }, '11'), { type: 'T', content: {} }, 'content is always present');
});

const redactContent = (type: string, content: object, v: '10' | '11') => redact({ type, content }, v).content;

test('redaction: content per event type, v10 vs v11', () => {
  const member = {
    membership: 'invite', join_authorised_via_users_server: '@x:s', displayname: 'A', avatar_url: 'mxc://a/b',
    third_party_invite: { display_name: 'Bob', signed: { mxid: '@b:s', token: 't', signatures: {} } },
  };
  assert.equal(redactContent('m.room.member', member, '10'), { membership: 'invite', join_authorised_via_users_server: '@x:s' });
  assert.equal(redactContent('m.room.member', member, '11'), {
    membership: 'invite', join_authorised_via_users_server: '@x:s',
    third_party_invite: { signed: { mxid: '@b:s', token: 't', signatures: {} } },
  });
  assert.equal(redactContent('m.room.member', { membership: 'join', third_party_invite: { display_name: 'x' } }, '11'), {
    membership: 'join',
  });

  const create = { creator: '@u:s', room_version: '10', 'm.federate': false, predecessor: { room_id: '!o:s' } };
  assert.equal(redactContent('m.room.create', create, '10'), { creator: '@u:s' });
  assert.equal(redactContent('m.room.create', create, '11'), create);

  const jr = { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!a:s' }], other: 1 };
  const jrKept = { join_rule: 'restricted', allow: jr.allow };
  assert.equal(redactContent('m.room.join_rules', jr, '10'), jrKept);
  assert.equal(redactContent('m.room.join_rules', jr, '11'), jrKept);

  const pl = {
    ban: 50, events: { 'm.room.name': 50 }, events_default: 0, invite: 0, kick: 50, redact: 50, state_default: 50,
    users: { '@u:s': 100 }, users_default: 0, notifications: { room: 50 }, historical: 100,
  };
  const { invite: _i, notifications: _n, historical: _h, ...plV10 } = pl;
  assert.equal(redactContent('m.room.power_levels', pl, '10'), plV10);
  assert.equal(redactContent('m.room.power_levels', pl, '11'), { ...plV10, invite: 0 });

  const hv = { history_visibility: 'shared', x: 1 };
  assert.equal(redactContent('m.room.history_visibility', hv, '10'), { history_visibility: 'shared' });
  assert.equal(redactContent('m.room.history_visibility', hv, '11'), { history_visibility: 'shared' });

  const red = { redacts: '$t', reason: 'spam' };
  assert.equal(redactContent('m.room.redaction', red, '10'), {});
  assert.equal(redactContent('m.room.redaction', red, '11'), { redacts: '$t' });

  for (const v of ['10', '11'] as const) {
    assert.equal(redactContent('m.room.message', { body: 'x', msgtype: 'm.text' }, v), {});
    assert.equal(redactContent('m.room.aliases', { aliases: ['#a:s'] }, v), {}, 'aliases only survived in v1-v5');
    assert.equal(redactContent('m.room.topic', { topic: 't' }, v), {});
    assert.equal(redactContent('constructor', { a: 1 }, v), {});
  }
});

test('redaction does not modify its input and returns copies', () => {
  const ev = { type: 'm.room.create', content: { creator: '@u:s', predecessor: { room_id: '!o:s' } }, origin: 's' };
  const before = structuredClone(ev);
  const r = redact(ev, '11') as { content: { predecessor: { room_id: string } } };
  r.content.predecessor.room_id = 'changed';
  assert.equal(ev, before);
});

// ---- format and size checks ----

const validPdu = () => ({
  auth_events: ['$a'], content: { body: 'x' }, depth: 5, hashes: { sha256: 'abc' }, origin_server_ts: 1, prev_events: ['$p'],
  room_id: '!r:s', sender: '@u:s', signatures: { s: { 'ed25519:1': 'sig' } }, type: 'm.room.message',
});

const shapeFails = (mutate: (e: Record<string, any>) => void, fragment: string, errcode = 'M_BAD_JSON') => {
  const ev: Record<string, any> = validPdu();
  mutate(ev);
  try {
    checkEventShape(ev, '11');
  } catch (err) {
    assert.instance(err, EventFormatError);
    assert.ok((err as Error).message.includes(fragment), (err as Error).message);
    assert.is((err as EventFormatError).errcode, errcode);
    return;
  }
  assert.unreachable(`expected the event to be refused (${fragment})`);
};

test('shape: required fields and their types', () => {
  checkEventShape(validPdu(), '11');
  checkEventShape({ ...validPdu(), state_key: '', unsigned: {}, event_id: '$e' }, '10');
  for (const key of ['type', 'sender', 'room_id', 'content', 'origin_server_ts', 'depth', 'hashes', 'signatures', 'auth_events', 'prev_events']) {
    shapeFails((e) => delete e[key], `'${key}'`);
  }
  shapeFails((e) => (e.content = []), "'content'");
  shapeFails((e) => (e.depth = -1), "'depth'");
  shapeFails((e) => (e.depth = 1.5), "'depth'");
  shapeFails((e) => (e.origin_server_ts = '1'), "'origin_server_ts'");
  shapeFails((e) => (e.state_key = 5), "'state_key'");
  shapeFails((e) => (e.hashes = {}), "'hashes'");
  shapeFails((e) => (e.signatures = { s: { k: 1 } }), "'signatures'");
  shapeFails((e) => (e.unsigned = 'x'), "'unsigned'");
  shapeFails((e) => (e.sender = 'u:s'), "'sender'");
  shapeFails((e) => (e.sender = '@nodomain'), "'sender'");
  shapeFails((e) => (e.room_id = '#r:s'), "'room_id'");
  shapeFails((e) => (e.prev_events = ['not-an-id']), "'prev_events'");
  shapeFails((e) => (e.auth_events = Array.from({ length: 11 }, (_, i) => `$${i}`)), 'at most 10');
  shapeFails((e) => (e.prev_events = Array.from({ length: 21 }, (_, i) => `$${i}`)), 'at most 20');
  shapeFails((e) => Object.assign(e, { type: 'm.room.redaction', content: { redacts: 5 } }), "'content.redacts'");
  assert.throws(() => checkEventShape([], '11'), /JSON object/);
  assert.throws(() => checkEventShape({ ...validPdu(), redacts: 5 }, '10'), /'redacts'/);
});

test('shape: 255-byte limits count UTF-8 bytes, not characters', () => {
  checkEventShape({ ...validPdu(), type: 'a'.repeat(255), state_key: 'é'.repeat(127) + 'a' }, '11');
  shapeFails((e) => (e.type = 'é'.repeat(128)), "'type' exceeds", 'M_TOO_LARGE'); // 128 chars, 256 bytes
  shapeFails((e) => (e.state_key = 'a'.repeat(256)), "'state_key' exceeds", 'M_TOO_LARGE');
  shapeFails((e) => (e.sender = '@' + 'u'.repeat(250) + ':s.io'), "'sender' exceeds", 'M_TOO_LARGE');
  shapeFails((e) => (e.room_id = '!' + 'r'.repeat(250) + ':s.io'), "'room_id' exceeds", 'M_TOO_LARGE');
  shapeFails((e) => (e.event_id = '$' + 'e'.repeat(255)), "'event_id' exceeds", 'M_TOO_LARGE');
  checkEventShape({ ...validPdu(), sender: '@' + 'u'.repeat(249) + ':s.io' }, '11'); // exactly 255
});

test('size: 65,536 bytes of canonical JSON (signatures and unsigned included) is the limit', () => {
  const ev: Record<string, any> = validPdu();
  const base = Buffer.byteLength(encodeCanonicalJson({ ...ev, content: { body: '' } }));
  ev.content = { body: 'x'.repeat(MAX_PDU_BYTES - base) };
  checkEventSize(ev);
  checkEvent(ev, '11');
  ev.content.body += 'x';
  assert.throws(() => checkEventSize(ev), (err: unknown) => (err as EventFormatError).errcode === 'M_TOO_LARGE');
  // Multi-byte characters count as their UTF-8 length; unsigned data counts too.
  const small = { ...validPdu(), content: { body: 'é'.repeat(32_000) } };
  checkEventSize(small);
  assert.throws(() => checkEventSize({ ...small, unsigned: { pad: 'x'.repeat(2000) } }), /65536/);
  assert.throws(() => checkEvent({ ...small, content: { body: 'é'.repeat(33_000) } }, '11'), /65536/);
});

// ---- server signing key in PostgreSQL ----

test('ServerSigningKey: generated once, persists across reopen, concurrent loads agree', async () => {
  const { url, drop } = await createTestDatabase();
  const open = () => Database.open({ url, dataDir: '/tmp/x', poolSize: 2, logger: createLogger('silent') });
  try {
    const db = await open();
    const [a, b] = await Promise.all([ServerSigningKey.load(db, 'hearth.test'), ServerSigningKey.load(db, 'hearth.test')]);
    assert.match(a.keyId, /^ed25519:a_[A-Za-z0-9]{4}$/);
    assert.is(decodeBase64(a.publicKeyBase64).length, 32);
    assert.is(b.keyId, a.keyId);
    assert.is(b.publicKeyBase64, a.publicKeyBase64);
    const rows = await db.query<{ value: string }>('select value from server_secrets where name = ?', [SIGNING_KEY_SECRET]);
    assert.is(rows.length, 1);
    assert.match(rows[0]!.value, new RegExp(`^ed25519 ${a.keyId.slice(8)} [A-Za-z0-9+/]{43}$`));
    await db.close();

    const db2 = await open();
    const c = await ServerSigningKey.load(db2, 'hearth.test');
    await db2.close();
    assert.is(c.keyId, a.keyId);
    assert.is(c.publicKeyBase64, a.publicKeyBase64);

    const signed = c.sign({ server_name: 'hearth.test', valid_until_ts: 1 });
    assert.ok(verifyJsonSignature(signed, 'hearth.test', a.keyId, a.publicKeyBase64));
    const ev = c.signEvent(validPdu(), '11');
    assert.ok(verifyEventHashAndSignature(ev, '11', 'hearth.test', c.keyId, c.publicKeyBase64).signatureValid);
  } finally {
    await drop();
  }
});

test('ServerSigningKey: a stored key in signing.key format loads; a malformed one is an error', () => {
  const k = ServerSigningKey.fromStored('ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1', 'domain');
  assert.is(k.keyId, 'ed25519:1');
  assert.is(k.publicKeyBase64, PUBLIC);
  assert.is(
    k.sign({}).signatures.domain!['ed25519:1'],
    'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ',
  );
  assert.throws(() => ServerSigningKey.fromStored('ed25519 a_x short', 'domain'), /malformed/);
  assert.throws(() => ServerSigningKey.fromStored('ed25519 a_x YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA', 'domain'), /malformed/);
  assert.throws(() => ServerSigningKey.fromStored('', 'domain'), /malformed/);
});

test('ServerSigningKey.build (EventSigner): signed event, its id, and the canonical federation JSON', () => {
  const k = ServerSigningKey.fromStored('ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1', 'domain');
  const { hashes: _h, signatures: _s, ...unsignedPdu } = { ...validPdu(), sender: '@u:domain' };
  const { event, json } = k.build(unsignedPdu, '11');
  const wire = parseStrictJson(json) as Record<string, unknown>;
  assert.is(json, encodeCanonicalJson(wire), 'json is canonical');
  assert.is(wire.event_id, undefined, 'the federation form carries no event id');
  assert.is(event.event_id, eventIdFor(wire, '11'));
  assert.equal({ ...wire, event_id: event.event_id }, event);
  assert.equal(check(wire, '11'), { signatureValid: true, hashValid: true });
  try {
    k.build({ ...unsignedPdu, content: { body: 'x'.repeat(MAX_PDU_BYTES) } }, '11');
    assert.unreachable('too large');
  } catch (err) {
    assert.instance(err, EventFormatError);
    assert.is((err as EventFormatError).status, 413);
  }
});

test.run();
