import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, loadConfig } from '../src/core/config.js';
import { PasswordHasher } from '../src/services/passwords.js';

const throwsSetting = (env: Record<string, string>, setting: string) => {
  try {
    loadConfig(env);
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.is((err as ConfigError).setting, setting);
    assert.ok((err as Error).message.startsWith(setting));
    return;
  }
  assert.unreachable(`expected a ConfigError for ${setting}`);
};

test('defaults: embedded database, in-process bus, closed registration, OWASP scrypt', () => {
  const c = loadConfig({ HEARTH_SERVER_NAME: 'example.org' });
  assert.is(c.databaseUrl, undefined);
  assert.is(c.redisUrl, undefined);
  assert.is(c.registration, 'closed');
  assert.is(c.port, 8008);
  assert.is(c.scryptCost, 131072);
  assert.is(c.publicBaseUrl, 'http://localhost:8008/');
  assert.is(c.emailTokenLifetimeMs, 3600_000);
  assert.equal(c.rateLimits.login, { perSecond: 0.17, burst: 5 });
});

test('bad or missing settings name the setting', () => {
  throwsSetting({}, 'HEARTH_SERVER_NAME');
  throwsSetting({ HEARTH_SERVER_NAME: 'bad name!' }, 'HEARTH_SERVER_NAME');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_PORT: 'abc' }, 'HEARTH_PORT');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_PORT: '70000' }, 'HEARTH_PORT');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_REGISTRATION: 'bogus' }, 'HEARTH_REGISTRATION');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_REGISTRATION: 'email' }, 'HEARTH_SMTP_URL');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_DATABASE_URL: 'mysql://x' }, 'HEARTH_DATABASE_URL');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_REDIS_URL: 'http://x' }, 'HEARTH_REDIS_URL');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_PUBLIC_BASEURL: 'ftp://x' }, 'HEARTH_PUBLIC_BASEURL');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_RATELIMIT_LOGIN: 'fast' }, 'HEARTH_RATELIMIT_LOGIN');
  throwsSetting({ HEARTH_SERVER_NAME: 'a.org', HEARTH_SCRYPT_COST: '1000' }, 'HEARTH_SCRYPT_COST');
});

test('settings are parsed', () => {
  const c = loadConfig({
    HEARTH_SERVER_NAME: 'chat.example.org:8448',
    HEARTH_PORT: '9000',
    HEARTH_PUBLIC_BASEURL: 'https://chat.example.org',
    HEARTH_REGISTRATION: 'email',
    HEARTH_SMTP_URL: 'smtp://mail:25',
    HEARTH_RATELIMIT_LOGIN: '0.5/10',
  });
  assert.is(c.serverName, 'chat.example.org:8448');
  assert.is(c.port, 9000);
  assert.is(c.publicBaseUrl, 'https://chat.example.org/');
  assert.equal(c.smtp, { url: 'smtp://mail:25', from: 'Hearth <noreply@chat.example.org>' });
  assert.equal(c.rateLimits.login, { perSecond: 0.5, burst: 10 });
});

test('scrypt hashes verify, reject wrong passwords, and salt each hash', async () => {
  const h = new PasswordHasher(1024);
  const a = await h.hash('pässword 1');
  const b = await h.hash('pässword 1');
  assert.is.not(a, b);
  assert.ok(await h.verify('pässword 1', a));
  assert.not.ok(await h.verify('password 1', a));
  assert.not.ok(await h.verify('pässword 1', null));
  assert.not.ok(await h.verify('pässword 1', 'garbage'));
});

test.run();
