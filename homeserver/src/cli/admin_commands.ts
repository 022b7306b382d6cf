import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MatrixError } from '../core/errors.js';
import type { Services } from '../services/index.js';

/** What the commands need from the outside world; tests pass in-process fakes. */
export interface AdminDeps {
  /** Opens the homeserver's services; only called once the arguments are known to be valid. */
  services(): Promise<Services>;
  /** All of standard input (for `--password-stdin`). */
  readStdin(): Promise<string>;
}

/** Where output goes: `log` for results, `error` for diagnostics (console fits). */
export interface AdminOutput {
  log(line: string): void;
  error(line: string): void;
}

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;
type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  usage: string;
  summary: string;
  options: Options;
  /** Positional argument names; all are required. */
  args: string[];
  run(c: CommandContext): Promise<void>;
}

interface CommandContext {
  args: string[];
  values: Values;
  deps: AdminDeps;
  out: AdminOutput;
}

const PASSWORD_OPTIONS: Options = { password: { type: 'string' }, 'password-stdin': { type: 'boolean' } };

const COMMANDS: Record<string, Command> = {
  'create-user': {
    usage: 'create-user <localpart> [--password P | --password-stdin] [--admin]',
    summary: 'create an account (without a password it cannot log in until reset-password)',
    options: { ...PASSWORD_OPTIONS, admin: { type: 'boolean' } },
    args: ['localpart'],
    async run({ args, values, deps, out }) {
      const password = await passwordFrom(values, deps, out, false);
      const services = await deps.services();
      const localpart = localpartOf(services, args[0]!);
      const userId = await services.accounts.createAccount({ localpart, password, isAdmin: values.admin === true });
      out.log(`created ${userId}${values.admin ? ' (server admin)' : ''}`);
      if (password === null) out.log('it has no password: set one with reset-password before it can log in');
    },
  },
  'set-admin': {
    usage: 'set-admin <user> <true|false>',
    summary: 'grant or revoke server admin rights',
    options: {},
    args: ['user', 'true|false'],
    async run({ args, deps, out }) {
      const flag = args[1]!.toLowerCase();
      if (flag !== 'true' && flag !== 'false') throw new UsageError(`expected true or false, got '${args[1]}'`);
      const services = await deps.services();
      const userId = services.accounts.userIdFor(args[0]!);
      await services.accounts.setAdmin(userId, flag === 'true');
      out.log(`${userId} is ${flag === 'true' ? 'now' : 'no longer'} a server admin`);
    },
  },
  'reset-password': {
    usage: 'reset-password <user> (--password P | --password-stdin)',
    summary: 'set a new password and log out every device',
    options: PASSWORD_OPTIONS,
    args: ['user'],
    async run({ args, values, deps, out }) {
      const password = (await passwordFrom(values, deps, out, true))!;
      const services = await deps.services();
      const userId = services.accounts.userIdFor(args[0]!);
      await services.accounts.resetPassword(userId, password);
      out.log(`password of ${userId} changed; all of its devices are logged out`);
    },
  },
  'list-users': {
    usage: 'list-users [--limit N]',
    summary: 'list accounts in user id order (default limit 100)',
    options: { limit: { type: 'string' } },
    args: [],
    async run({ values, deps, out }) {
      const limit = values.limit === undefined ? 100 : wholeNumber('--limit', values.limit, 1, 100_000);
      const services = await deps.services();
      const users = await services.accounts.list(limit + 1);
      const rows = users.slice(0, limit).map((u) => [
        u.userId,
        u.isAdmin ? 'yes' : 'no',
        u.deactivated ? 'yes' : 'no',
        u.hasPassword ? 'yes' : 'no',
        new Date(u.createdTs).toISOString(),
      ]);
      table(out, ['USER', 'ADMIN', 'DEACTIVATED', 'PASSWORD', 'CREATED'], rows);
      if (users.length > limit) out.log(`(more than ${limit} users: raise --limit to see them all)`);
    },
  },
  'create-registration-token': {
    usage: 'create-registration-token [--token T] [--uses N] [--expires-in-hours H]',
    summary: 'create a token for HEARTH_REGISTRATION=token (prints it)',
    options: { token: { type: 'string' }, uses: { type: 'string' }, 'expires-in-hours': { type: 'string' } },
    args: [],
    async run({ values, deps, out }) {
      const token = values.token as string | undefined;
      const uses = values.uses === undefined ? null : wholeNumber('--uses', values.uses, 1, 2 ** 31 - 1);
      const hours = values['expires-in-hours'];
      let expiryTs: number | null = null;
      if (hours !== undefined) {
        const h = Number(hours);
        if (!/^\d+(\.\d+)?$/.test(String(hours)) || !(h > 0) || h > 24 * 366 * 100) {
          throw new UsageError(`--expires-in-hours must be a positive number of hours, got '${hours}'`);
        }
        expiryTs = Date.now() + Math.round(h * 3_600_000);
      }
      const services = await deps.services();
      const created = await services.registrationTokens.create({ token, usesAllowed: uses, expiryTs });
      out.log(created);
      const limits = [uses === null ? 'unlimited uses' : `${uses} use${uses === 1 ? '' : 's'}`];
      limits.push(expiryTs === null ? 'no expiry' : `expires ${new Date(expiryTs).toISOString()}`);
      out.error(`registration token created: ${limits.join(', ')}`);
    },
  },
  'list-registration-tokens': {
    usage: 'list-registration-tokens',
    summary: 'list registration tokens (masked) with their uses and expiry',
    options: {},
    args: [],
    async run({ deps, out }) {
      const services = await deps.services();
      const now = Date.now();
      const rows: string[][] = [];
      for (const t of await services.registrationTokens.list()) {
        const expiry = t.expiry_ts === null ? null : Number(t.expiry_ts);
        const usedUp = t.uses_allowed !== null && t.completed >= t.uses_allowed;
        const expired = expiry !== null && expiry <= now;
        rows.push([
          maskToken(t.token),
          `${t.completed}/${t.uses_allowed ?? 'unlimited'}`,
          expiry === null ? 'never' : new Date(expiry).toISOString(),
          expired ? 'expired' : usedUp ? 'used up' : 'valid',
          new Date(Number(t.created_ts)).toISOString(),
        ]);
      }
      table(out, ['TOKEN', 'USED', 'EXPIRES', 'STATE', 'CREATED'], rows);
    },
  },
  'deactivate-user': {
    usage: 'deactivate-user <user>',
    summary: 'deactivate an account for good: sessions, email addresses and profile are removed',
    options: {},
    args: ['user'],
    async run({ args, deps, out }) {
      const services = await deps.services();
      const userId = services.accounts.userIdFor(args[0]!);
      const account = await services.accounts.describe(userId);
      if (!account) throw new Error(`no account ${userId}`);
      if (account.deactivated) throw new Error(`${userId} is already deactivated`);
      await services.accounts.deactivate(userId);
      out.log(`deactivated ${userId}`);
    },
  },
};

export function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`);
  return [
    'usage: npm run admin -- <command> [arguments]',
    '',
    'commands:',
    ...lines,
    '',
    '<user> is a localpart or a full user id of this server. Settings come from the HEARTH_* environment,',
    'as for the homeserver; with the embedded database the homeserver must be stopped first.',
  ].join('\n');
}

/**
 * Runs one admin command; resolves with the process exit status: 0 done, 1 failed, 2 bad arguments.
 * Passwords are never printed; the only secret ever printed is a newly created registration token.
 */
export async function runAdmin(argv: string[], deps: AdminDeps, out: AdminOutput): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    if (name === undefined) {
      out.error(usage());
      return EXIT_USAGE;
    }
    out.log(usage());
    return EXIT_OK;
  }
  const command = COMMANDS[name];
  if (!command) {
    out.error(`unknown command '${name}'\n\n${usage()}`);
    return EXIT_USAGE;
  }
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...command.options, help: { type: 'boolean', short: 'h' } },
        allowPositionals: true,
        strict: true,
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (parsed.values.help) {
      out.log(`usage: npm run admin -- ${command.usage}`);
      return EXIT_OK;
    }
    const { positionals } = parsed;
    if (positionals.length !== command.args.length) {
      const expected = command.args.length === 0 ? 'no arguments' : command.args.map((a) => `<${a}>`).join(' ');
      throw new UsageError(`'${name}' takes ${expected}, got ${positionals.length}`);
    }
    await command.run({ args: positionals, values: parsed.values as Values, deps, out });
    return EXIT_OK;
  } catch (err) {
    if (err instanceof UsageError) {
      out.error(`${err.message}\nusage: npm run admin -- ${command.usage}`);
      return EXIT_USAGE;
    }
    // MatrixErrors carry readable messages (M_USER_IN_USE, M_WEAK_PASSWORD...); so do our own Errors.
    const detail = err instanceof MatrixError ? `${err.message} (${err.errcode})` : (err as Error).message;
    out.error(`${name} failed: ${detail}`);
    return EXIT_ERROR;
  }
}

/** The password chosen by --password or --password-stdin (one trailing newline stripped). */
async function passwordFrom(values: Values, deps: AdminDeps, out: AdminOutput, required: boolean): Promise<string | null> {
  const inline = values.password as string | undefined;
  const fromStdin = values['password-stdin'] === true;
  if (inline !== undefined && fromStdin) throw new UsageError('give --password or --password-stdin, not both');
  if (inline !== undefined) {
    out.error('warning: --password is visible to other local users in the process list; prefer --password-stdin');
    if (inline === '') throw new UsageError('--password must not be empty');
    return inline;
  }
  if (fromStdin) {
    const password = (await deps.readStdin()).replace(/\r?\n$/, '');
    if (password === '') throw new Error('no password on standard input');
    return password;
  }
  if (required) throw new UsageError('a new password is required: --password P or --password-stdin');
  return null;
}

/** Lower-cased as /register does; a full id must name this server. The localpart rules are /register's. */
function localpartOf(services: Services, localpartOrId: string): string {
  if (!localpartOrId.startsWith('@')) return localpartOrId.toLowerCase();
  const userId = services.accounts.userIdFor(localpartOrId);
  return userId.slice(1, userId.indexOf(':'));
}

function wholeNumber(flag: string, raw: string | boolean, min: number, max: number): number {
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || n < min || n > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got '${String(raw)}'`);
  }
  return n;
}

/** Enough of a registration token to tell tokens apart, not enough to use one. */
function maskToken(token: string): string {
  return `${token.slice(0, Math.min(4, Math.floor(token.length / 3)))}…`;
}

function table(out: AdminOutput, header: string[], rows: string[][]): void {
  if (rows.length === 0) {
    out.log('(none)');
    return;
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [header, ...rows]) out.log(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}
