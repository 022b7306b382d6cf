import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout; call tokens never reach the logs. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, redact: { paths: ['token', '*.token', 'params.token'], censor: '[redacted]' }, base: { service: 'sfu' } },
    destination,
  );
}
