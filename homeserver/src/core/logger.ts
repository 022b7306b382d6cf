import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths pino blanks out wherever they appear: secrets never reach the logs. */
const REDACT = [
  'password',
  'new_password',
  'access_token',
  'refresh_token',
  'token',
  'client_secret',
  '*.password',
  '*.new_password',
  '*.access_token',
  '*.refresh_token',
  '*.token',
  '*.client_secret',
  'req.headers.authorization',
  'headers.authorization',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { service: 'homeserver' } }, destination);
}

/** Strips secrets carried in query strings (`access_token`, `token`, `client_secret`) from a URL for logging. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:access_token|token|client_secret|refresh_token)=)[^&]*/g, '$1[redacted]');
}
