// `npm run start -w sfu`: reads HEARTH_SFU_* settings, starts the worker pool and listens.
// mediasoup reads MEDIASOUP_WORKER_BIN when it loads, so the check comes before importing it.
import { existsSync } from 'node:fs';
import { ConfigError, loadSfuConfig } from './config.js';
import { createLogger } from './logger.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadSfuConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`hearth-sfu: bad setting ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const bin = process.env.MEDIASOUP_WORKER_BIN;
  if (bin && !existsSync(bin)) {
    console.error(`hearth-sfu: MEDIASOUP_WORKER_BIN=${bin} does not exist (scripts/build-mediasoup-worker builds it)`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  const { createSfu } = await import('./server.js');
  const sfu = await createSfu({ config, logger });
  const port = await sfu.listen(config.port, config.bindHost);
  logger.info({ host: config.bindHost, port, workers: config.workers, rtcListenIp: config.rtcListenIp, announcedIp: config.announcedIp }, 'sfu started');
  console.log(`Hearth SFU listening on ws://${config.bindHost}:${port}/ (${config.workers} mediasoup workers)`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await sfu.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  console.error(`hearth-sfu: failed to start: ${(err as Error).message}`);
  process.exit(1);
});
