// The worker pool on the worker binary built by scripts/build-mediasoup-worker: workers start,
// routers land on the least loaded one, transports get UDP and TCP candidates, and a killed
// worker is replaced.
import './support/worker_bin.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { MEDIA_CODECS } from '../src/call.js';
import { WorkerPool } from '../src/workers.js';
import { until } from './support/sfu.js';

const logger = pino({ level: 'silent' });

test('two workers start; routers spread over them; a WebRtcTransport gets UDP and TCP candidates', async () => {
  const pool = await WorkerPool.create({ count: 2, rtcMinPort: 43000, rtcMaxPort: 43999 }, logger);
  try {
    assert.is(pool.workers().length, 2);
    const pids = pool.workers().map((w) => w.pid);
    assert.ok(pids.every((pid) => pid > 0) && pids[0] !== pids[1]);
    const r1 = await pool.createRouter(MEDIA_CODECS);
    const r2 = await pool.createRouter(MEDIA_CODECS);
    assert.equal(
      pool.stats().map((s) => s.routers),
      [1, 1],
      'the second router goes to the idle worker',
    );
    const codecs = r1.rtpCapabilities.codecs!.map((c) => c.mimeType);
    assert.ok(codecs.includes('audio/opus') && codecs.includes('video/VP8'), codecs.join());
    const transport = await r1.createWebRtcTransport({ listenIps: [{ ip: '127.0.0.1' }], enableUdp: true, enableTcp: true });
    const protocols = transport.iceCandidates.map((c) => c.protocol).sort();
    assert.equal(protocols, ['tcp', 'udp']);
    for (const c of transport.iceCandidates) {
      assert.is(c.ip, '127.0.0.1');
      assert.ok(c.port >= 43000 && c.port <= 43999, `port ${c.port} in range`);
    }
    r2.close();
    assert.equal(
      pool.stats().map((s) => s.routers).sort(),
      [0, 1],
    );
  } finally {
    pool.close();
  }
});

test('a killed worker is replaced; its routers close; the new worker serves routers', async () => {
  const pool = await WorkerPool.create({ count: 1, rtcMinPort: 43000, rtcMaxPort: 43999 }, logger);
  try {
    const router = await pool.createRouter(MEDIA_CODECS);
    const oldPid = pool.workers()[0]!.pid;
    const died = new Promise<void>((resolve) => pool.once('died', () => resolve()));
    const routerClosed = new Promise<void>((resolve) => router.observer.once('close', () => resolve()));
    process.kill(oldPid, 'SIGKILL');
    await died;
    await routerClosed;
    assert.ok(router.closed);
    const newPid = await until('a replacement worker', () => pool.workers()[0]?.pid);
    assert.is.not(newPid, oldPid);
    const again = await pool.createRouter(MEDIA_CODECS);
    assert.ok(!again.closed);
    assert.equal(pool.stats(), [{ pid: newPid, routers: 1 }]);
  } finally {
    pool.close();
  }
});

test.run();
