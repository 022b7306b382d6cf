// Hearth SFU benchmark (not a test): mediasoup worker CPU against the number of consumers it
// forwards to, and join-to-first-frame time for a browser joining a call.
//
//   node --import tsx --conditions=source bench/sfu-bench.ts [--consumers 0,20,100,200] [--window-s 5] [--joins 5]
//
// It starts an in-process SFU with ONE worker on 127.0.0.1 (the MEDIASOUP_WORKER_BIN from
// scripts/build-mediasoup-worker), a headless chromium (Debian's) whose page produces the fake
// camera (VP8 simulcast, 3 encodings) and microphone, then:
//   1. join-to-first-frame: a fresh viewer page connects, joins and consumes; the time from before
//      its WebSocket opens until its camera consumer has decoded a frame (inbound-rtp framesDecoded).
//   2. consumers vs CPU: for each level it adds viewers on PlainTransports (one audio + one video
//      consumer each, sending RTP to a UDP sink in this process; no browser per viewer), lets the
//      load settle, then reads worker.getResourceUsage() (ru_utime + ru_stime) over a window:
//      CPU % of one core, and the RTP rate the worker sends.
// Loopback only; it stops by itself. Results go in protocol-spec/sfu-signalling.md.
import '../sfu/test/support/worker_bin.js';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import type { types } from 'mediasoup';
import { pino } from 'pino';
import { createTokenVerifier } from '../sfu/src/auth.js';
import { loadSfuConfig } from '../sfu/src/config.js';
import { createSfu } from '../sfu/src/server.js';
import { BrowserParticipant, browserSkipReason, launchBrowser } from '../sfu/test/support/browser.js';
import { startTestIssuer } from '../sfu/test/support/jwks.js';
import { until } from '../sfu/test/support/sfu.js';
import { ms, summarize, table } from './support/stats.js';

const { values: argv } = parseArgs({
  options: {
    consumers: { type: 'string', default: '0,20,100,200' },
    'window-s': { type: 'string', default: '5' },
    joins: { type: 'string', default: '5' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (argv.help) {
  console.log('node --import tsx --conditions=source bench/sfu-bench.ts [--consumers 0,20,100,200] [--window-s 5] [--joins 5]');
  process.exit(0);
}
const levels = argv.consumers.split(',').map(Number);
const windowMs = Number(argv['window-s']) * 1000;
const joins = Number(argv.joins);
const skip = browserSkipReason();
if (skip) {
  console.error(skip);
  process.exit(1);
}

const ROOM = '!bench:bench.hearth';
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

const issuer = await startTestIssuer('bench.hearth');
const config = loadSfuConfig({
  HEARTH_SFU_JWKS_URL: issuer.jwksUrl,
  HEARTH_SFU_ISSUER: issuer.issuer,
  HEARTH_SFU_WORKERS: '1',
  HEARTH_SFU_MAX_PARTICIPANTS: '1000',
  HEARTH_SFU_RTC_MIN_PORT: '44000',
  HEARTH_SFU_RTC_MAX_PORT: '44999',
});
const sfu = await createSfu({ config, logger: pino({ level: 'warn' }), verifier: createTokenVerifier({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer }) });
const port = await sfu.listen(0, '127.0.0.1');
const url = `ws://127.0.0.1:${port}/`;
const browser = await launchBrowser();
const sink = dgram.createSocket('udp4');
let sinkBytes = 0;
sink.on('message', (m) => {
  sinkBytes += m.length;
});
await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
const sinkPort = (sink.address() as AddressInfo).port;

const token = (name: string) => issuer.sign({ userId: `@${name}:bench.hearth`, deviceId: name, roomId: ROOM });

try {
  // ---- the producer ----
  const producer = await BrowserParticipant.open(browser, 'producer');
  await producer.join(url, await token('producer'), ROOM);
  await producer.run((c) => c.startMicrophone());
  const camId: string = await producer.run((c) => c.startCamera(true));
  const call = sfu.calls.get(ROOM)!;
  const cam = call.findProducer(camId)!;
  await until('two simulcast layers', async () => (await cam.getStats()).filter((s) => s.byteCount > 0).length >= 2);
  const producers = [...call.participants.values()].flatMap((p) => [...p.producers.values()]);

  // ---- 1. join-to-first-frame ----
  const firstFrame: number[] = [];
  for (let i = 0; i < joins; i++) {
    const viewer = await BrowserParticipant.open(browser, `viewer${i}`);
    const t = await viewer.run(
      async (c, a: { url: string; token: string; room: string }) => {
        const t0 = performance.now();
        await c.connect(a.url);
        await c.join(a.token, a.room);
        for (;;) {
          for (const info of c.consumers.values()) {
            if (info.consumer.kind !== 'video') continue;
            let frames = 0;
            (await info.consumer.getStats()).forEach((s: { type: string; framesDecoded?: number }) => {
              if (s.type === 'inbound-rtp') frames += s.framesDecoded ?? 0;
            });
            if (frames > 0) return performance.now() - t0;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      },
      { url, token: await token(`viewer${i}`), room: ROOM },
    );
    firstFrame.push(t);
    await viewer.close();
  }
  const ff = summarize(firstFrame);
  console.log(`\njoin-to-first-frame (${joins} joins, fresh page each, camera 640x480 VP8 simulcast):`);
  console.log(table([['', 'p50', 'p95', 'max'], ['join → first decoded frame', ms(ff.p50), ms(ff.p95), ms(ff.max)]]));

  // ---- 2. consumers vs worker CPU ----
  const worker = sfu.pool.workers()[0]!;
  const plain: types.PlainTransport[] = [];
  const rows: string[][] = [['consumers', 'worker CPU (% of a core)', 'µs CPU per consumer-s', 'RTP out (Mbit/s)']];
  for (const level of levels) {
    while (plain.length * 2 < level) {
      const t = await call.router.createPlainTransport({ listenIp: { ip: '127.0.0.1' }, rtcpMux: true, comedia: false });
      await t.connect({ ip: '127.0.0.1', port: sinkPort });
      for (const p of producers) {
        await t.consume({ producerId: p.id, rtpCapabilities: call.router.rtpCapabilities, paused: false });
      }
      plain.push(t);
    }
    const consumers = plain.length * 2;
    await sleep(2000); // keyframes requested by the new consumers, bitrate settles
    const u0 = await worker.getResourceUsage();
    const b0 = sinkBytes;
    const t0 = performance.now();
    await sleep(windowMs);
    const u1 = await worker.getResourceUsage();
    const elapsed = performance.now() - t0;
    const cpuMs = u1.ru_utime + u1.ru_stime - (u0.ru_utime + u0.ru_stime);
    const cpuPct = (cpuMs / elapsed) * 100;
    const perConsumer = consumers ? ((cpuMs * 1000) / (elapsed / 1000) / consumers).toFixed(0) : '-';
    const mbit = (((sinkBytes - b0) * 8) / (elapsed / 1000) / 1e6).toFixed(1);
    rows.push([String(consumers), cpuPct.toFixed(1), perConsumer, mbit]);
    console.log(`  measured ${consumers} consumers`);
  }
  console.log('\nconsumers on one worker vs its CPU (PlainTransport viewers, audio + simulcast camera each):');
  console.log(table(rows));
  await producer.close();
} finally {
  await browser.close();
  await sfu.close();
  await issuer.close();
  sink.close();
}
