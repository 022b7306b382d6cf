// The real matrix-js-sdk (37.x) against a homeserver on a real port: registration through
// UIA as the SDK drives it, password login (both call shapes), whoami, /versions, logout,
// and transparent access-token refresh on a soft logout.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { startTestServer } from './support/harness.js';
import { quietSdk, sdkSuite } from './support/sdk.js';

// The SDK logs refreshes and failures; keep the output readable.
quietSdk();

const t = sdkSuite('matrix-js-sdk 37 against the homeserver');

/** Registers through the dummy UIA flow exactly as the SDK's callers do: 401 + session, then auth. */
async function sdkRegister(baseUrl: string, username: string, password: string, extra: Record<string, unknown> = {}) {
  const client = sdk.createClient({ baseUrl });
  let session: string | undefined;
  try {
    await client.registerRequest({ username, password, ...extra });
    assert.unreachable('the first /register call must ask for UIA');
  } catch (err) {
    assert.instance(err, sdk.MatrixError);
    const e = err as sdk.MatrixError;
    assert.is(e.httpStatus, 401);
    assert.equal(e.data.flows, [{ stages: ['m.login.dummy'] }]);
    session = e.data.session as string;
    assert.type(session, 'string');
  }
  const res = await client.registerRequest({ username, password, ...extra, auth: { type: 'm.login.dummy', session } });
  return res;
}

async function expectMatrixError(p: Promise<unknown>, status: number, errcode: string): Promise<sdk.MatrixError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, sdk.MatrixError, `expected a MatrixError, got ${String(err)}`);
    const e = err as sdk.MatrixError;
    assert.is(e.httpStatus, status);
    assert.is(e.errcode, errcode);
    return e;
  }
  assert.unreachable(`expected ${status} ${errcode}`);
  throw new Error('unreachable');
}

t('getVersions / isVersionSupported', async ({ baseUrl }) => {
  const client = sdk.createClient({ baseUrl });
  const versions = await client.getVersions();
  assert.ok(Array.isArray(versions.versions));
  assert.ok(versions.versions.includes('v1.3'));
  assert.ok(await client.isVersionSupported('v1.1'));
  assert.ok(await client.isVersionSupported('v1.3'), 'refresh tokens (v1.3) are advertised');
  assert.ok(await client.isVersionSupported('v1.11'), 'v1.11 (authenticated media) is advertised: protocol-spec/versions.md');
});

t('registerRequest through UIA, whoami, loginWithPassword, login(), logout(true) revokes the token', async ({ baseUrl }) => {
  const reg = await sdkRegister(baseUrl, 'sdkuser', 'sdk password 1', { initial_device_display_name: 'SDK test' });
  assert.is(reg.user_id, '@sdkuser:hearth.test');
  assert.type(reg.access_token, 'string');
  assert.type(reg.device_id, 'string');

  // The token the registration returned works.
  const registered = sdk.createClient({ baseUrl, accessToken: reg.access_token, userId: reg.user_id });
  const me = await registered.whoami();
  assert.is(me.user_id, '@sdkuser:hearth.test');
  assert.is(me.device_id, reg.device_id);

  // The username is taken now; the SDK sees M_USER_IN_USE (before any UIA round trip).
  await expectMatrixError(sdk.createClient({ baseUrl }).registerRequest({ username: 'sdkuser', password: 'another password' }), 400, 'M_USER_IN_USE');
  // isUsernameAvailable maps exactly M_USER_IN_USE to false (anything else would throw).
  assert.is(await sdk.createClient({ baseUrl }).isUsernameAvailable('SDKUSER'), false);
  assert.is(await sdk.createClient({ baseUrl }).isUsernameAvailable('sdkfree'), true);
  await expectMatrixError(sdk.createClient({ baseUrl }).isUsernameAvailable('no spaces'), 400, 'M_INVALID_USERNAME');

  // loginWithPassword: the deprecated top-level `user` field, a new device, and the client keeps the token.
  const c1 = sdk.createClient({ baseUrl });
  const l1 = await c1.loginWithPassword('sdkuser', 'sdk password 1');
  assert.is(l1.user_id, '@sdkuser:hearth.test');
  assert.is.not(l1.device_id, reg.device_id);
  assert.is(c1.getAccessToken(), l1.access_token);
  assert.is((await c1.whoami()).device_id, l1.device_id);

  // login('m.login.password', …) with an identifier and a chosen device id.
  const c2 = sdk.createClient({ baseUrl });
  const l2 = await c2.login('m.login.password', {
    identifier: { type: 'm.id.user', user: '@sdkuser:hearth.test' },
    password: 'sdk password 1',
    device_id: 'SDKDEVICE',
  });
  assert.is(l2.device_id, 'SDKDEVICE');
  assert.is((await c2.whoami()).device_id, 'SDKDEVICE');

  // A wrong password is M_FORBIDDEN.
  await expectMatrixError(sdk.createClient({ baseUrl }).loginWithPassword('sdkuser', 'wrong password'), 403, 'M_FORBIDDEN');

  // logout(true) stops the client and ends only this session.
  let loggedOutEvent: sdk.MatrixError | undefined;
  c1.on(sdk.HttpApiEvent.SessionLoggedOut, (e) => (loggedOutEvent = e));
  assert.equal(await c1.logout(true), {});
  const gone = await expectMatrixError(c1.whoami(), 401, 'M_UNKNOWN_TOKEN');
  assert.is(gone.data.soft_logout, false, 'a logged-out token is a hard logout');
  assert.ok(loggedOutEvent, 'the SDK announced the session as logged out');
  // The raw token, in a fresh client, is rejected too.
  await expectMatrixError(sdk.createClient({ baseUrl, accessToken: l1.access_token }).whoami(), 401, 'M_UNKNOWN_TOKEN');
  // The other sessions live on.
  assert.is((await c2.whoami()).device_id, 'SDKDEVICE');
  assert.is((await registered.whoami()).device_id, reg.device_id);
});

t('a missing token is M_MISSING_TOKEN', async ({ baseUrl }) => {
  await expectMatrixError(sdk.createClient({ baseUrl }).whoami(), 401, 'M_MISSING_TOKEN');
});

t('an expired access token is refreshed transparently through POST /refresh', async () => {
  const s = await startTestServer({ HEARTH_ACCESS_TOKEN_LIFETIME_MS: '1500' });
  try {
    const baseUrl = await s.listen();
    const reg = await sdkRegister(baseUrl, 'refresher', 'refresh password', { refresh_token: true });
    assert.type(reg.refresh_token, 'string');
    assert.is(reg.expires_in_ms, 1500);

    const refreshCalls: string[] = [];
    let latestRefreshToken = reg.refresh_token!;
    // As Element does: the refresh function uses a token-less client (the SDK's refreshToken() POSTs /v3/refresh).
    const tokenRefreshFunction: sdk.TokenRefreshFunction = async (refreshToken) => {
      refreshCalls.push(refreshToken);
      const r = await sdk.createClient({ baseUrl }).refreshToken(refreshToken);
      latestRefreshToken = r.refresh_token!;
      return {
        accessToken: r.access_token,
        refreshToken: r.refresh_token,
        expiry: r.expires_in_ms ? new Date(Date.now() + r.expires_in_ms) : undefined,
      };
    };
    const client = sdk.createClient({
      baseUrl,
      userId: reg.user_id,
      deviceId: reg.device_id,
      accessToken: reg.access_token,
      refreshToken: reg.refresh_token,
      tokenRefreshFunction,
    });
    let loggedOut = false;
    client.on(sdk.HttpApiEvent.SessionLoggedOut, () => (loggedOut = true));

    assert.is((await client.whoami()).user_id, '@refresher:hearth.test');
    assert.is(refreshCalls.length, 0, 'no refresh while the token is fresh');

    // Let the token expire: the server answers 401 M_UNKNOWN_TOKEN soft_logout=true and the SDK refreshes.
    await new Promise((r) => setTimeout(r, 1800));
    const expired = await s.request('GET', '/_matrix/client/v3/account/whoami', { token: reg.access_token });
    assert.is(expired.status, 401);
    assert.is(expired.body.errcode, 'M_UNKNOWN_TOKEN');
    assert.is(expired.body.soft_logout, true);

    const me = await client.whoami();
    assert.is(me.user_id, '@refresher:hearth.test');
    assert.is(me.device_id, reg.device_id, 'same device after refresh');
    assert.equal(refreshCalls, [reg.refresh_token], 'exactly one refresh, with the original refresh token');
    const newToken = client.getAccessToken();
    assert.ok(newToken && newToken !== reg.access_token, 'the client now holds a new access token');
    assert.is(loggedOut, false, 'no logout event');

    // Expire again: the rotated refresh token is used this time, and it works again.
    await new Promise((r) => setTimeout(r, 1800));
    assert.is((await client.whoami()).user_id, '@refresher:hearth.test');
    assert.is(refreshCalls.length, 2);
    assert.is.not(refreshCalls[1], reg.refresh_token, 'the second refresh used the rotated refresh token');
    assert.is(loggedOut, false);

    // After logout the refresh token is dead too: the SDK's attempt to refresh fails and it reports
    // the hard M_UNKNOWN_TOKEN (and a logged-out session).
    await client.logout();
    await expectMatrixError(sdk.createClient({ baseUrl }).refreshToken(latestRefreshToken), 401, 'M_UNKNOWN_TOKEN');
    await expectMatrixError(client.whoami(), 401, 'M_UNKNOWN_TOKEN');
    assert.ok(loggedOut, 'the SDK gave up and announced the logout');
  } finally {
    await s.close();
  }
});

t.run();
