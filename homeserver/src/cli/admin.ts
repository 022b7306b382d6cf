// The admin command line: `npm run admin -- <command>` (see admin_commands.ts for the commands).
// It opens the same database as the homeserver, from the same HEARTH_* settings.
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { bootstrap, type Homeserver } from '../server.js';
import { runAdmin } from './admin_commands.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<number> {
  let hs: Homeserver | undefined;
  try {
    const deps = {
      async services() {
        const config = loadConfig(process.env);
        // stdout carries the command's output: logs go to stderr, and only warnings and worse.
        const logger = createLogger(config.logLevel === 'silent' ? 'silent' : 'warn', process.stderr);
        hs = await bootstrap(config, logger);
        return hs.deps.services;
      },
      readStdin,
    };
    return await runAdmin(process.argv.slice(2), deps, console);
  } finally {
    await hs?.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`hearth admin: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
