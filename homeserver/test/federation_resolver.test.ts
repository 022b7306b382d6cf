import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import https from 'node:https';
import fs from 'node:fs';
import type http from 'node:http';
import { createLogger } from '../src/core/logger.js';
import { listen } from '../src/server.js';
import { ResolveError, ServerResolver, type ResolvedServer } from '../src/services/federation/resolver.js';
import { FederationTransport } from '../src/services/federation/transport.js';
import { createTestCa, TestDns, type TestCa } from './support/federation.js';
import { beforeAll } from './support/hooks.js';

/**
 * The spec's resolution steps against a DNS table and a real HTTPS server answering
 * /.well-known/matrix/server for several hostnames (all 127.0.0.1; the well-known port is
 * injected because tests cannot bind 443).
 */
interface Ctx {
  ca: TestCa;
  wk: https.Server;
  port: number;
  dns: TestDns;
  hits: string[];
  transport: FederationTransport;
  resolver: ServerResolver;
}
const t = suite<Ctx>('server name resolution');

const WK_HOSTS = ['delegating.test', 'deleg-srv.test', 'deleg-ip.test', 'deleg-plain.test', 'redirecting.test', 'looping.test', 'bad-json.test', 'cached.test', 'plain.test', 'srv.test', 'legacy.test'];

beforeAll(t, async (ctx) => {
  ctx.ca = await createTestCa();
  const cert = await ctx.ca.issue({ dns: WK_HOSTS });
  ctx.hits = [];
  ctx.wk = https.createServer({ cert: fs.readFileSync(cert.certFile), key: fs.readFileSync(cert.keyFile) }, (req, res) => {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    ctx.hits.push(host);
    const json = (body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(200, { 'content-type': 'application/json', ...headers });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    if (req.url !== '/.well-known/matrix/server') return void res.writeHead(404).end();
    switch (host) {
      case 'delegating.test': return json({ 'm.server': 'target.test:7443' });
      case 'deleg-srv.test': return json({ 'm.server': 'deleg.test' });
      case 'deleg-plain.test': return json({ 'm.server': 'deleg-plain-target.test' });
      case 'deleg-ip.test': return json({ 'm.server': '127.0.0.2:9999' });
      case 'cached.test': return json({ 'm.server': 'c.test:1' }, { 'cache-control': 'max-age=600' });
      case 'bad-json.test': return json('{"m.server": ');
      case 'redirecting.test':
        res.writeHead(302, { location: `https://delegating.test:${ctx.port}/.well-known/matrix/server` });
        return void res.end();
      case 'looping.test':
        res.writeHead(301, { location: `https://looping.test:${ctx.port}/.well-known/matrix/server` });
        return void res.end();
      default:
        res.writeHead(404).end('{}');
    }
  });
  ctx.port = await listen(ctx.wk as unknown as http.Server, '127.0.0.1', 0);
  ctx.dns = new TestDns();
  for (const h of WK_HOSTS) ctx.dns.addHost(h, '127.0.0.1');
  ctx.dns
    .addHost('explicit.test', '127.0.0.1', '::1')
    .addHost('target.test', '127.0.0.3')
    .addHost('deleg.test', '127.0.0.4')
    .addHost('srv-node.test', '127.0.0.5')
    .addHost('srv-node2.test', '127.0.0.6')
    .addHost('legacy-node.test', '127.0.0.7')
    .addHost('deleg-plain-target.test', '127.0.0.8')
    .addHost('c.test', '127.0.0.9')
    .addSrv('_matrix-fed._tcp.deleg.test', { name: 'srv-node.test', port: 8500 })
    .addSrv('_matrix-fed._tcp.srv.test', { name: 'srv-node2.test', port: 8601, priority: 20 }, { name: 'srv-node.test', port: 8600, priority: 10 })
    .addSrv('_matrix._tcp.legacy.test', { name: 'legacy-node.test', port: 8700 })
    .addSrv('_matrix-fed._tcp.plain.test', { name: '.', port: 0 });
  ctx.transport = new FederationTransport({ caFile: ctx.ca.caFile, insecure: false });
  ctx.resolver = new ServerResolver({ dns: ctx.dns, transport: ctx.transport, allowPrivateAddresses: true, wellKnownTimeoutMs: 5000, logger: createLogger('silent'), wellKnownPort: ctx.port });
});

t.after(async (ctx) => {
  ctx.transport?.close();
  ctx.wk?.closeAllConnections();
  await new Promise((r) => (ctx.wk ? ctx.wk.close(r) : r(null)));
  ctx.ca?.remove();
});

const summary = (r: ResolvedServer) => ({
  step: r.step,
  host: r.hostHeader,
  sni: r.tlsServername,
  targets: r.targets.map((x) => `${x.address}:${x.port}`),
  ...(r.delegatedTo ? { delegatedTo: r.delegatedTo } : {}),
});

const table: [string, string, ReturnType<typeof summary>][] = [
  ['1. IPv4 literal with port', '127.0.0.1:1234', { step: 'ip_literal', host: '127.0.0.1:1234', sni: undefined, targets: ['127.0.0.1:1234'] }],
  ['1. IPv6 literal without port: 8448, no SNI', '[::1]', { step: 'ip_literal', host: '[::1]', sni: undefined, targets: ['::1:8448'] }],
  ['2. explicit port: A/AAAA, Host with port, SNI hostname', 'explicit.test:9000', { step: 'explicit_port', host: 'explicit.test:9000', sni: 'explicit.test', targets: ['127.0.0.1:9000', '::1:9000'] }],
  ['3.2 well-known to host:port', 'delegating.test', { step: 'well_known', host: 'target.test:7443', sni: 'target.test', targets: ['127.0.0.3:7443'], delegatedTo: 'target.test:7443' }],
  ['3.1 well-known to an IP literal: Host is the IP with port, no SNI', 'deleg-ip.test', { step: 'well_known', host: '127.0.0.2:9999', sni: undefined, targets: ['127.0.0.2:9999'], delegatedTo: '127.0.0.2:9999' }],
  ['3.3 well-known to a host with SRV: Host and SNI the delegated host', 'deleg-srv.test', { step: 'well_known', host: 'deleg.test', sni: 'deleg.test', targets: ['127.0.0.5:8500'], delegatedTo: 'deleg.test' }],
  ['3.5 well-known to a host without SRV: port 8448', 'deleg-plain.test', { step: 'well_known', host: 'deleg-plain-target.test', sni: 'deleg-plain-target.test', targets: ['127.0.0.8:8448'], delegatedTo: 'deleg-plain-target.test' }],
  ['3. a 30x redirect is followed', 'redirecting.test', { step: 'well_known', host: 'target.test:7443', sni: 'target.test', targets: ['127.0.0.3:7443'], delegatedTo: 'target.test:7443' }],
  ['4. no well-known: SRV _matrix-fed._tcp, by priority; Host and SNI the server name', 'srv.test', { step: 'srv', host: 'srv.test', sni: 'srv.test', targets: ['127.0.0.5:8600', '127.0.0.6:8601'] }],
  ['5. deprecated _matrix._tcp SRV', 'legacy.test', { step: 'srv_legacy', host: 'legacy.test', sni: 'legacy.test', targets: ['127.0.0.7:8700'] }],
  ['6. nothing: A/AAAA and 8448 (an SRV target "." means none)', 'plain.test', { step: 'default_port', host: 'plain.test', sni: 'plain.test', targets: ['127.0.0.1:8448'] }],
  ['3. invalid well-known JSON falls through to 8448', 'bad-json.test', { step: 'default_port', host: 'bad-json.test', sni: 'bad-json.test', targets: ['127.0.0.1:8448'] }],
  ['3. a redirect loop falls through to 8448', 'looping.test', { step: 'default_port', host: 'looping.test', sni: 'looping.test', targets: ['127.0.0.1:8448'] }],
];
for (const [name, serverName, expected] of table) {
  t(name, async ({ resolver }) => assert.equal(summary(await resolver.resolve(serverName)), expected));
}

t('well-known answers and failures are cached; Cache-Control is honoured', async (ctx) => {
  ctx.hits.length = 0;
  ctx.resolver.clearCache();
  for (let i = 0; i < 3; i++) {
    await ctx.resolver.resolve('cached.test');
    await ctx.resolver.resolve('plain.test');
  }
  assert.equal(ctx.hits.filter((h) => h === 'cached.test').length, 1);
  assert.equal(ctx.hits.filter((h) => h === 'plain.test').length, 1, 'the 404 is cached too');
  // After max-age (600 s) the delegation is fetched again; the failure's (shorter) back-off too.
  let now = Date.now() + 601_000;
  const later = new ServerResolver({ dns: ctx.dns, transport: ctx.transport, allowPrivateAddresses: true, wellKnownTimeoutMs: 5000, logger: createLogger('silent'), wellKnownPort: ctx.port, now: () => now });
  await later.resolve('cached.test');
  now += 601_000;
  await later.resolve('cached.test');
  assert.equal(ctx.hits.filter((h) => h === 'cached.test').length, 3);
});

t('concurrent resolutions share one well-known fetch', async (ctx) => {
  ctx.hits.length = 0;
  ctx.resolver.clearCache();
  await Promise.all([1, 2, 3, 4].map(() => ctx.resolver.resolve('delegating.test')));
  assert.is(ctx.hits.filter((h) => h === 'delegating.test').length, 1);
});

t('private addresses are refused after resolution unless allowed', async (ctx) => {
  const strict = new ServerResolver({ dns: ctx.dns, transport: ctx.transport, allowPrivateAddresses: false, wellKnownTimeoutMs: 5000, logger: createLogger('silent'), wellKnownPort: ctx.port });
  ctx.dns.addHost('mixed.test', '10.0.0.1', '93.184.216.34').addHost('internal.test', '10.0.0.9');
  const refused = async (name: string) => {
    try {
      await strict.resolve(name);
      assert.unreachable(`${name} resolved`);
    } catch (err) {
      assert.instance(err, ResolveError);
      assert.is((err as ResolveError).kind, 'private_address', name);
    }
  };
  await refused('127.0.0.1:8448');
  await refused('[::1]');
  await refused('[::ffff:192.168.0.1]:8448');
  await refused('explicit.test:9000');
  await refused('internal.test'); // its well-known (also private) is not fetched either
  await refused('srv.test'); // SRV targets are checked too
  await refused('deleg-ip.test'); // so is where a well-known would delegate (its fetch is refused first)
  assert.equal((await strict.resolve('mixed.test:8448')).targets, [{ address: '93.184.216.34', family: 4, port: 8448 }], 'only the public address is kept');
  assert.is((await strict.resolve('93.184.216.34')).targets[0]!.port, 8448);
  // The same names resolve when private addresses are allowed.
  assert.is((await ctx.resolver.resolve('explicit.test:9000')).targets.length, 2);
});

t('unknown names and invalid names are typed errors', async ({ resolver }) => {
  for (const [name, kind] of [['nowhere.test:80', 'dns'], ['bad..name', 'invalid_name'], ['1.2.3.400', 'invalid_name']] as const) {
    try {
      await resolver.resolve(name);
      assert.unreachable(name);
    } catch (err) {
      assert.is((err as ResolveError).kind, kind, name);
    }
  }
});

t.run();
