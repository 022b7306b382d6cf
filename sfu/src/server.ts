// createSfu(deps): the worker pool, the calls and the HTTP/WebSocket front. It never listens by
// itself: main.ts calls listen(config.port), tests listen(0) on 127.0.0.1.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { types } from 'mediasoup';
// Not re-exported by mediasoup's index; the version is pinned (3.12.16), so the deep import is stable.
import { generateRouterRtpCapabilities } from 'mediasoup/node/lib/ortc.js';
import { WebSocketServer } from 'ws';
import { createTokenVerifier, type TokenVerifier } from './auth.js';
import { CallRegistry, MEDIA_CODECS, type CallStats } from './call.js';
import type { SfuConfig } from './config.js';
import type { Logger } from './logger.js';
import { Session } from './signalling/session.js';
import { WorkerPool, type WorkerStats } from './workers.js';

export interface SfuDeps {
  config: SfuConfig;
  logger: Logger;
  /** Default: the remote JWKS of config.jwksUrl with config.issuer. */
  verifier?: TokenVerifier;
}

export interface SfuStats {
  workers: WorkerStats[];
  sockets: number;
  calls: CallStats[];
}

export interface Sfu {
  readonly config: SfuConfig;
  readonly pool: WorkerPool;
  readonly calls: CallRegistry;
  readonly httpServer: http.Server;
  /** Starts listening; resolves the bound port. */
  listen(port: number, host: string): Promise<number>;
  /** Server-side view of every call, participant, transport, producer and consumer. */
  stats(): SfuStats;
  close(): Promise<void>;
}

export async function createSfu(deps: SfuDeps): Promise<Sfu> {
  const { config, logger } = deps;
  const verifier = deps.verifier ?? createTokenVerifier({ jwksUrl: config.jwksUrl, issuer: config.issuer });
  const pool = await WorkerPool.create({ count: config.workers, rtcMinPort: config.rtcMinPort, rtcMaxPort: config.rtcMaxPort }, logger);
  const calls = new CallRegistry(pool, config, logger);
  // Every router gets the same codecs, hence the same capabilities: computed once, served before join.
  const routerRtpCapabilities: types.RtpCapabilities = generateRouterRtpCapabilities(MEDIA_CODECS);
  const sessions = new Set<Session>();

  const httpServer = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') {
      const ok = pool.workers().length > 0;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', workers: pool.workers().length }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not found; the SFU speaks WebSocket (protocol-spec/sfu-signalling.md)' }));
  });

  const wss = new WebSocketServer({ server: httpServer, maxPayload: config.limits.maxMessageBytes });
  wss.on('connection', (ws, req) => {
    const session = new Session(
      ws,
      { calls, verifier, routerRtpCapabilities: () => routerRtpCapabilities, logger },
      { joinTimeoutMs: config.limits.joinTimeoutMs, pingIntervalMs: config.pingIntervalMs },
      logger.child({ remote: req.socket.remoteAddress }),
      (s) => sessions.delete(s),
    );
    sessions.add(session);
  });
  wss.on('error', (err) => logger.error({ err: err.message }, 'websocket server error'));

  let closed = false;
  return {
    config,
    pool,
    calls,
    httpServer,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          httpServer.off('error', reject);
          resolve((httpServer.address() as AddressInfo).port);
        });
      });
    },
    stats() {
      return { workers: pool.stats(), sockets: sessions.size, calls: calls.all().map((c) => c.stats()) };
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const s of [...sessions]) s.close(1001, 'server shutting down');
      calls.closeAll();
      wss.close();
      pool.close();
      if (httpServer.listening) {
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      }
    },
  };
}
