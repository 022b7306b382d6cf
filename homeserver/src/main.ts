import http from 'node:http';
import { ConfigError, loadConfig } from './core/config.js';
import { createLogger } from './core/logger.js';
import { bootstrap, listen } from './server.js';

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
  logger.info({ serverName: config.serverName, host: config.bindHost, port, database: config.databaseUrl ? 'postgresql' : 'embedded' }, 'homeserver started');
  console.log(`Hearth homeserver for ${config.serverName} is running: open ${config.publicBaseUrl}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close();
    server.closeAllConnections();
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
