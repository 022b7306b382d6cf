import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import Koa from 'koa';
import { inject } from 'light-my-request';
import { ServerSigningKey } from '../src/services/rooms/signing_key.js';
import { encodeBase64, generateSeed } from '../src/core/signing.js';
import { XMatrixParseError, formatXMatrix, parseXMatrix, signRequest, verifyRequest } from '../src/services/federation/x_matrix.js';
import { isPrivateAddress } from '../src/services/federation/ip_ranges.js';
import { ServerNameAccess, parseServerName } from '../src/services/federation/server_name.js';
import { cacheTtl } from '../src/services/federation/resolver.js';
import { KeyResponseError, verifyKeyResponse } from '../src/services/federation/key_response.js';
import { ConfigError, loadConfig } from '../src/core/config.js';
import { matrixErrors } from '../src/api/middleware/errors.js';
import { originConcurrencyLimit } from '../src/api/federation/origin_limit.js';
import { createLogger } from '../src/core/logger.js';

const key = (name: string) => ServerSigningKey.fromStored(`ed25519 a_test ${encodeBase64(generateSeed())}`, name);

// ---------------------------------------------------------------------------------------------
const x = suite('X-Matrix header parsing (RFC 9110 auth-params as the spec describes)');

const cases: [string, string, ReturnType<typeof parseXMatrix>][] = [
  ['spec example, quoted', 'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF..."',
    { origin: 'origin.hs.example.com', destination: 'destination.hs.example.com', key: 'ed25519:key1', sig: 'ABCDEF...' }],
  ['unquoted tokens, colons unquoted (older servers)', 'X-Matrix origin=a.example:8448,destination=b.example,key=ed25519:k1,sig=abc+def',
    { origin: 'a.example:8448', destination: 'b.example', key: 'ed25519:k1', sig: 'abc+def' }],
  ['case-insensitive scheme and names, any order', 'x-matrix SIG="s/1",Key="ed25519:k",ORIGIN="o.example"',
    { origin: 'o.example', key: 'ed25519:k', sig: 's/1' }],
  ['spaces and tabs around commas and =, several spaces after the scheme', 'X-Matrix   origin = "o.example" ,\tkey="ed25519:k"\t, sig= "s"',
    { origin: 'o.example', key: 'ed25519:k', sig: 's' }],
  ['backslash escapes are unescaped', 'X-Matrix origin="o\\.example",key="ed25519:k",sig="a\\"b\\\\c"',
    { origin: 'o.example', key: 'ed25519:k', sig: 'a"b\\c' }],
  ['unknown parameters ignored, empty list elements allowed', 'X-Matrix origin="o.example",,extra=1,key="ed25519:k",sig="s",',
    { origin: 'o.example', key: 'ed25519:k', sig: 's' }],
];
for (const [name, header, expected] of cases) {
  x(name, () => assert.equal(parseXMatrix(header), expected));
}

const bad: [string, string][] = [
  ['another scheme', 'Bearer abc'],
  ['no space after the scheme', 'X-Matrixorigin="o",key="ed25519:k",sig="s"'],
  ['missing sig', 'X-Matrix origin="o.example",key="ed25519:k"'],
  ['missing origin', 'X-Matrix key="ed25519:k",sig="s"'],
  ['unterminated quote', 'X-Matrix origin="o.example,key="ed25519:k",sig="s'],
  ['value with a slash unquoted', 'X-Matrix origin=o.example,key=ed25519:k,sig=ab/cd'],
  ['a parameter twice', 'X-Matrix origin="a",origin="b",key="ed25519:k",sig="s"'],
  ['junk after a value', 'X-Matrix origin="a" junk,key="ed25519:k",sig="s"'],
  ['name without value', 'X-Matrix origin,key="ed25519:k",sig="s"'],
];
for (const [name, header] of bad) {
  x(`refused: ${name}`, () => assert.throws(() => parseXMatrix(header), (e: unknown) => e instanceof XMatrixParseError));
}

x('formatXMatrix writes what the spec asks senders to write and parses back', () => {
  const auth = { origin: 'a.example', destination: 'b.example:8448', key: 'ed25519:k', sig: 'xyz' };
  assert.is(formatXMatrix(auth), 'X-Matrix origin="a.example",destination="b.example:8448",key="ed25519:k",sig="xyz"');
  assert.equal(parseXMatrix(formatXMatrix(auth)), auth);
});

x('a signed request verifies; any change of method, uri, destination, content or key fails', () => {
  const k = key('a.example');
  const parts = { method: 'PUT', uri: '/_matrix/federation/v1/send/1?x=1', destination: 'b.example', content: { pdus: [], n: 1 } };
  const auth = parseXMatrix(signRequest(k, parts));
  assert.is(auth.origin, 'a.example');
  assert.is(auth.key, k.keyId);
  const ok = (p: Partial<typeof parts>, pub = k.publicKeyBase64) => verifyRequest(auth, { ...parts, origin: 'a.example', ...p }, pub);
  assert.ok(ok({}));
  assert.not.ok(ok({ method: 'POST' }));
  assert.not.ok(ok({ uri: '/_matrix/federation/v1/send/1?x=2' }));
  assert.not.ok(ok({ destination: 'c.example' }));
  assert.not.ok(ok({ content: { pdus: [], n: 2 } }));
  assert.not.ok(ok({ content: undefined }));
  assert.not.ok(ok({}, key('a.example').publicKeyBase64));
});

x.run();

// ---------------------------------------------------------------------------------------------
const ip = suite('private address classification');

const privateOnes = ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '100.127.255.254', '169.254.169.254', '0.0.0.0', '224.0.0.1',
  '255.255.255.255', '192.0.2.5', '198.18.0.1', '::1', '::', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '64:ff9b::a00:1',
  '2002:7f00:1::1', '2001:db8::1', 'not-an-ip'];
const publicOnes = ['93.184.216.34', '1.1.1.1', '172.32.0.1', '100.128.0.1', '8.8.8.8', '2606:4700:4700::1111', '::ffff:93.184.216.34', '64:ff9b::808:808', '2a00:1450::1'];
ip('refuses private, loopback, link-local, CGNAT, ULA, multicast, reserved and IPv4-embedding forms of them', () => {
  for (const a of privateOnes) assert.ok(isPrivateAddress(a), `${a} should be private`);
});
ip('allows public unicast addresses', () => {
  for (const a of publicOnes) assert.not.ok(isPrivateAddress(a), `${a} should be public`);
});
ip.run();

// ---------------------------------------------------------------------------------------------
const names = suite('server names, allow/deny lists, cache-control, key responses, settings');

names('parseServerName', () => {
  assert.equal(parseServerName('example.org'), { host: 'example.org', port: undefined, ipFamily: 0 });
  assert.equal(parseServerName('Example.org:8448'), { host: 'example.org', port: 8448, ipFamily: 0 });
  assert.equal(parseServerName('[::1]:80'), { host: '::1', port: 80, ipFamily: 6 });
  assert.equal(parseServerName('1.2.3.4'), { host: '1.2.3.4', port: undefined, ipFamily: 4 });
  for (const bad of ['', 'a..b', 'example.org:0', 'example.org:70000', '1.2.3.400', '[nothex]', 'exa mple.org', 'a.org:']) assert.is(parseServerName(bad), null, bad);
});

names('ServerNameAccess: globs over hostnames (or whole names with a port), deny wins, empty allow list allows all', () => {
  const open = new ServerNameAccess([], ['evil.example', '*.spam.example', 'host.example:1234']);
  assert.ok(open.isAllowed('good.example'));
  assert.not.ok(open.isAllowed('evil.example'));
  assert.not.ok(open.isAllowed('EVIL.example:8448'), 'any port, any case');
  assert.not.ok(open.isAllowed('a.b.spam.example'));
  assert.ok(open.isAllowed('spam.example'), '*.x does not match x itself');
  assert.not.ok(open.isAllowed('host.example:1234'));
  assert.ok(open.isAllowed('host.example:1235'));
  assert.not.ok(open.isAllowed('not a name'));
  const closed = new ServerNameAccess(['*.friends.example', 'partner.example'], ['bad.friends.example']);
  assert.ok(closed.isAllowed('a.friends.example'));
  assert.ok(closed.isAllowed('partner.example:443'));
  assert.not.ok(closed.isAllowed('stranger.example'));
  assert.not.ok(closed.isAllowed('bad.friends.example'));
});

names('cacheTtl: max-age within [5 min, 48 h], default 24 h', () => {
  assert.is(cacheTtl(undefined), 24 * 3600_000);
  assert.is(cacheTtl('max-age=3600'), 3600_000);
  assert.is(cacheTtl('public, max-age=10'), 5 * 60_000);
  assert.is(cacheTtl('max-age=9999999'), 48 * 3600_000);
  assert.is(cacheTtl('no-store'), 5 * 60_000);
  assert.is(cacheTtl('private'), 24 * 3600_000);
});

names('verifyKeyResponse: self-signed by every verify key, right server name, integer validity', () => {
  const k = key('a.example');
  const body = { server_name: 'a.example', valid_until_ts: 1_900_000_000_000, verify_keys: { [k.keyId]: { key: k.publicKeyBase64 } }, old_verify_keys: {} };
  const signed = k.sign(body);
  const ok = verifyKeyResponse(signed, 'a.example');
  assert.equal(ok.verifyKeys, [{ keyId: k.keyId, publicKey: k.publicKeyBase64 }]);
  assert.is(ok.validUntilTs, 1_900_000_000_000);
  const fails = (json: unknown, server = 'a.example') => assert.throws(() => verifyKeyResponse(json, server), (e: unknown) => e instanceof KeyResponseError);
  fails(signed, 'b.example');
  fails({ ...signed, valid_until_ts: 5 }); // signature no longer matches
  fails(body); // unsigned
  const other = key('a.example');
  fails(other.sign({ ...body })); // signed by a key it does not list
  const twoKeys = k.sign({ ...body, verify_keys: { ...body.verify_keys, [other.keyId.replace('a_test', 'b_test')]: { key: other.publicKeyBase64 } } });
  fails(twoKeys); // the second key did not sign
  fails(k.sign({ ...body, valid_until_ts: '1900000000000' }));
  fails(k.sign({ ...body, server_name: 'b.example' }), 'b.example'); // signed, but by a.example's key under b.example's name
});

names('settings: federation defaults, validation', () => {
  const base = { HEARTH_SERVER_NAME: 'example.org' };
  const c = loadConfig(base).federation;
  assert.is(c.enabled, false);
  assert.is(c.port, undefined);
  assert.is(c.allowPrivateAddresses, false);
  assert.is(c.tlsInsecure, false);
  assert.is(c.keyValidityMs, 24 * 3600_000);
  assert.equal(c.trustedKeyServers, []);
  const k = key('n.example');
  const d = loadConfig({
    ...base,
    HEARTH_FEDERATION_ENABLED: 'true',
    HEARTH_FEDERATION_PORT: '8448',
    HEARTH_FEDERATION_DOMAIN_DENYLIST: 'evil.example, *.bad.example',
    HEARTH_FEDERATION_TRUSTED_KEY_SERVERS: `matrix.org, n.example ${k.keyId} ${k.publicKeyBase64}`,
    HEARTH_FEDERATION_WELL_KNOWN_SERVER: 'fed.example.org:443',
  }).federation;
  assert.is(d.port, 8448);
  assert.equal(d.domainDenylist, ['evil.example', '*.bad.example']);
  assert.equal(d.trustedKeyServers, [{ serverName: 'matrix.org', verifyKeys: {} }, { serverName: 'n.example', verifyKeys: { [k.keyId]: k.publicKeyBase64 } }]);
  assert.is(d.wellKnownServer, 'fed.example.org:443');
  const refused = (env: Record<string, string>, setting: string) =>
    assert.throws(() => loadConfig({ ...base, ...env }), (e: unknown) => e instanceof ConfigError && e.setting === setting);
  refused({ HEARTH_FEDERATION_TLS_CERT_FILE: '/etc/hostname' }, 'HEARTH_FEDERATION_TLS_KEY_FILE');
  refused({ HEARTH_FEDERATION_CA_FILE: '/nonexistent/ca.pem' }, 'HEARTH_FEDERATION_CA_FILE');
  refused({ HEARTH_FEDERATION_WELL_KNOWN_SERVER: 'https://x' }, 'HEARTH_FEDERATION_WELL_KNOWN_SERVER');
  refused({ HEARTH_FEDERATION_TRUSTED_KEY_SERVERS: 'n.example ed25519:x' }, 'HEARTH_FEDERATION_TRUSTED_KEY_SERVERS');
  refused({ HEARTH_FEDERATION_DOMAIN_ALLOWLIST: 'a b' }, 'HEARTH_FEDERATION_DOMAIN_ALLOWLIST');
  refused({ HEARTH_FEDERATION_KEY_VALIDITY_MS: '1000' }, 'HEARTH_FEDERATION_KEY_VALIDITY_MS');
});

names('originConcurrencyLimit: the request over the limit of one origin gets 429, other origins and later requests pass', async () => {
  const app = new Koa<{ origin?: string }>();
  const gates: (() => void)[] = [];
  app.use(matrixErrors(createLogger('silent')));
  app.use(async (ctx, next) => {
    ctx.state.origin = ctx.get('x-origin');
    await next();
  });
  app.use(originConcurrencyLimit(2));
  app.use(async (ctx) => {
    if (ctx.get('x-hold')) await new Promise<void>((r) => gates.push(r));
    ctx.body = { ok: true };
  });
  const cb = app.callback();
  const req = (origin: string, hold = false) => inject(cb as never, { method: 'GET', url: '/', headers: { 'x-origin': origin, ...(hold ? { 'x-hold': '1' } : {}) } });
  const held = [req('a.example', true), req('a.example', true)];
  while (gates.length < 2) await new Promise((r) => setImmediate(r));
  const third = await req('a.example');
  assert.is(third.statusCode, 429);
  assert.is(JSON.parse(third.body).errcode, 'M_LIMIT_EXCEEDED');
  assert.is((await req('b.example')).statusCode, 200, 'another origin is not affected');
  for (const g of gates) g();
  for (const h of await Promise.all(held)) assert.is(h.statusCode, 200);
  assert.is((await req('a.example')).statusCode, 200, 'slots are released');
});

names.run();
