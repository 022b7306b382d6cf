import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import https from 'node:https';
import type http from 'node:http';
import { listen } from '../src/server.js';
import { FederationTransport } from '../src/services/federation/transport.js';
import { createTestCa, type TestCa } from './support/federation.js';

/** The federation transport's pooled keep-alive connections (services/federation/transport.ts). */
type Ctx = { ca: TestCa; server: https.Server; port: number; connections: number };
const t = suite<Ctx>('federation transport: kept-alive connections');

t.before(async (ctx) => {
  ctx.ca = await createTestCa();
  const cert = await ctx.ca.issue({ dns: ['peer.localhost'] });
  ctx.connections = 0;
  ctx.server = https.createServer({ cert: fs.readFileSync(cert.certFile), key: fs.readFileSync(cert.keyFile) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  ctx.server.on('secureConnection', () => ctx.connections++);
  ctx.port = await listen(ctx.server as unknown as http.Server, '127.0.0.1', 0);
});
t.after((ctx) => {
  ctx.server?.closeAllConnections();
  ctx.server?.close();
  ctx.ca?.remove();
});

t('one connection reused for 40 requests adds no listener per request (no MaxListenersExceededWarning)', async (ctx) => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  const transport = new FederationTransport({ caFile: ctx.ca.caFile, insecure: false });
  try {
    for (let i = 0; i < 40; i++) {
      const res = await transport.request({
        targets: [{ address: '127.0.0.1', family: 4, port: ctx.port }],
        tlsServername: 'peer.localhost',
        hostHeader: 'peer.localhost',
        method: 'GET',
        path: `/ping/${i}`,
        timeoutMs: 10_000,
        maxBytes: 1024,
      });
      assert.is(res.status, 200);
    }
    // Warnings are emitted on a later tick.
    await new Promise((r) => setImmediate(r));
    assert.is(ctx.connections, 1, 'every request went over the one kept-alive connection');
    assert.equal(warnings.map((w) => `${w.name}: ${w.message}`), []);
  } finally {
    process.off('warning', onWarning);
    transport.close();
  }
});

t.run();
