import http from 'node:http';
import type { Config } from './core/config.js';
import type { Logger } from './core/logger.js';
import { Database } from './storage/db.js';
import { createBus } from './bus/index.js';
import { createServices, type ServiceOverrides } from './services/index.js';
import { createApp, type AppDeps } from './app.js';
import { RealtimeServer } from './api/ws/sync_ws.js';

export interface Homeserver {
  deps: AppDeps;
  app: ReturnType<typeof createApp>;
  /** Serves the WebSocket endpoints (WebSocket sync) on this HTTP server's upgrades. */
  attachRealtime(server: http.Server): void;
  /** Closes every WebSocket (an HTTP server's close() waits for upgraded sockets too). */
  closeRealtime(): Promise<void>;
  close(): Promise<void>;
}

/** Opens the database (running migrations), the bus and the services, and builds the app. */
export async function bootstrap(config: Config, logger: Logger, overrides: ServiceOverrides = {}): Promise<Homeserver> {
  const db = await Database.open({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
    logger,
  });
  let bus;
  try {
    bus = await createBus(config.redisUrl);
  } catch (err) {
    await db.close();
    throw err;
  }
  const services = await createServices(config, logger, db, bus, overrides);
  // Push gateway sender: woken by the notifier, holds per-pusher leases (services/push/sender.ts).
  services.push.sender.start();
  const deps: AppDeps = { config, logger, db, bus, services };
  const realtime = new RealtimeServer(deps);
  return {
    deps,
    app: createApp(deps),
    attachRealtime: (server) => realtime.attach(server),
    closeRealtime: () => realtime.close(),
    async close() {
      await realtime.close();
      services.mailer.close();
      await services.federationMessaging.close();
      services.federation.close();
      await services.push.sender.close();
      await services.presence.close();
      await services.typing.close();
      await bus.close();
      await db.close();
    },
  };
}

/** Listens on the configured host and port; resolves with the bound port. */
export function listen(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}
