import http from 'node:http';
import { ConfigError, loadConfig } from './core/config.js';
import { createLogger } from './core/logger.js';
import { bootstrap, listen } from './server.js';
import { createFederationServer } from './api/federation/listener.js';
import { createFederationApp } from './api/federation/app.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`hearth: bad setting ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const hs = await bootstrap(config, logger);
  const server = http.createServer(hs.app.callback());
  hs.attachRealtime(server);
  // Long-poll /sync holds requests open; keep-alive sockets must outlive the longest poll.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const port = await listen(server, config.bindHost, config.port);
  // The dedicated federation listener (federation endpoints only), when a port is configured.
  const fed = config.federation;
  const fedServer = fed.enabled && fed.port !== undefined ? createFederationServer(fed) : null;
  if (fedServer) {
    fedServer.on('request', createFederationApp(hs.deps).callback());
    const fedPort = await listen(fedServer as http.Server, fed.bindHost, fed.port!);
    logger.info({ host: fed.bindHost, port: fedPort, tls: fed.tls !== undefined }, 'federation listener started');
  }
  logger.info({ serverName: config.serverName, host: config.bindHost, port, database: config.databaseUrl ? 'postgresql' : 'embedded' }, 'homeserver started');
  console.log(`Hearth homeserver for ${config.serverName} is running: open ${config.publicBaseUrl}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close();
    server.closeAllConnections();
    fedServer?.close();
    fedServer?.closeAllConnections();
    await hs.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  console.error(`hearth: failed to start: ${(err as Error).message}`);
  process.exit(1);
});
