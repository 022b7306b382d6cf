import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { DEFAULT_OVERRIDE, DEFAULT_UNDERRIDE } from './support/push.js';

const t = suite<{ s: TestServer }>('push rules');

t.before(async (ctx) => {
  ctx.s = await startTestServer();
});
t.after(async (ctx) => {
  await ctx.s.close();
});

const P = '/_matrix/client/v3/pushrules';
const rulePath = (kind: string, ruleId: string, suffix = '') => `${P}/global/${kind}/${encodeURIComponent(ruleId)}${suffix}`;
const ids = (rules: { rule_id: string }[]) => rules.map((r) => r.rule_id);


t('defaults: the spec server-default rules in order, the user id filled in; single rules readable', async ({ s }) => {
  const u = await registerUser(s, 'pdefaults');
  const res = await s.request('GET', `${P}/`, { token: u.access_token });
  assert.is(res.status, 200);
  const g = res.body.global;
  assert.equal(Object.keys(g).sort(), ['content', 'override', 'room', 'sender', 'underride']);
  assert.equal(ids(g.override), DEFAULT_OVERRIDE);
  assert.equal(ids(g.underride), DEFAULT_UNDERRIDE);
  assert.equal([g.content, g.room, g.sender], [[], [], []]);
  const invite = g.override.find((r: any) => r.rule_id === '.m.rule.invite_for_me');
  assert.equal(invite, {
    rule_id: '.m.rule.invite_for_me',
    default: true,
    enabled: true,
    conditions: [
      { kind: 'event_match', key: 'type', pattern: 'm.room.member' },
      { kind: 'event_match', key: 'content.membership', pattern: 'invite' },
      { kind: 'event_match', key: 'state_key', pattern: u.user_id },
    ],
    actions: ['notify', { set_tweak: 'sound', value: 'default' }],
  });
  assert.equal((await s.request('GET', `${P}/global/`, { token: u.access_token })).body, g);

  const one = await s.request('GET', rulePath('underride', '.m.rule.call'), { token: u.access_token });
  assert.is(one.status, 200);
  assert.equal(one.body, g.underride[0]);
  assert.equal((await s.request('GET', rulePath('override', '.m.rule.master', '/enabled'), { token: u.access_token })).body, { enabled: false });
  assert.equal((await s.request('GET', rulePath('underride', '.m.rule.message', '/actions'), { token: u.access_token })).body, { actions: ['notify'] });
  const missing = await s.request('GET', rulePath('override', 'nope'), { token: u.access_token });
  assert.is(missing.status, 404);
  assert.is(missing.body.errcode, 'M_NOT_FOUND');
  assert.is((await s.request('GET', rulePath('underride', '.m.rule.master'), { token: u.access_token })).status, 404, 'a default of another kind');
});

t('room, sender and content rules are added, read back, and deleted', async ({ s }) => {
  const u = await registerUser(s, 'padd');
  const tok = { token: u.access_token };
  const room = '!abc:hearth.test';
  assert.is((await s.request('PUT', rulePath('room', room), { ...tok, body: { actions: [] } })).status, 200);
  const put = await s.request('PUT', rulePath('sender', '@spam:elsewhere.test'), { ...tok, body: { actions: ['notify', { set_tweak: 'sound', value: 'bing' }] } });
  assert.is(put.status, 200);
  assert.equal(put.body, {});
  assert.is((await s.request('PUT', rulePath('content', 'cake'), { ...tok, body: { pattern: 'cake*lie', actions: ['notify', 'dont_notify'] } })).status, 200);

  const g = (await s.request('GET', `${P}/`, tok)).body.global;
  assert.equal(g.room, [{ rule_id: room, default: false, enabled: true, actions: [] }]);
  assert.equal(g.sender, [{ rule_id: '@spam:elsewhere.test', default: false, enabled: true, actions: ['notify', { set_tweak: 'sound', value: 'bing' }] }]);
  assert.equal(g.content, [{ rule_id: 'cake', default: false, enabled: true, pattern: 'cake*lie', actions: ['notify'] }], 'historical actions are stripped');
  assert.equal(ids(g.override), DEFAULT_OVERRIDE, 'other kinds untouched');
  assert.equal((await s.request('GET', rulePath('room', room), tok)).body, g.room[0]);

  const del = await s.request('DELETE', rulePath('room', room), tok);
  assert.is(del.status, 200);
  assert.equal(del.body, {});
  assert.is((await s.request('GET', rulePath('room', room), tok)).status, 404);
  const again = await s.request('DELETE', rulePath('room', room), tok);
  assert.is(again.status, 404);
  assert.is(again.body.errcode, 'M_NOT_FOUND');
  assert.equal((await s.request('GET', `${P}/`, tok)).body.global.room, []);
});

t('override rules: newest first after .m.rule.master, before the other defaults; before/after place them', async ({ s }) => {
  const u = await registerUser(s, 'porder');
  const tok = { token: u.access_token };
  const add = (id: string, query = '', conditions: unknown[] = [{ kind: 'event_match', key: 'type', pattern: id }]) =>
    s.request('PUT', `${rulePath('override', id)}${query}`, { ...tok, body: { actions: ['notify'], conditions } });
  const order = async () => ids((await s.request('GET', `${P}/global/`, tok)).body.override).filter((id) => !id.startsWith('.') || id === '.m.rule.master' || id === '.m.rule.suppress_notices');

  assert.is((await add('a')).status, 200);
  assert.is((await add('b')).status, 200);
  assert.equal(await order(), ['.m.rule.master', 'b', 'a', '.m.rule.suppress_notices'], 'a new rule is the most important user rule');
  assert.is((await add('c', '?after=a')).status, 200);
  assert.equal(await order(), ['.m.rule.master', 'b', 'a', 'c', '.m.rule.suppress_notices']);
  assert.is((await add('d', '?before=a')).status, 200);
  assert.equal(await order(), ['.m.rule.master', 'b', 'd', 'a', 'c', '.m.rule.suppress_notices']);
  assert.is((await add('e', '?before=b&after=c')).status, 200, 'both given: before wins');
  assert.equal(await order(), ['.m.rule.master', 'e', 'b', 'd', 'a', 'c', '.m.rule.suppress_notices']);
  // Updating without before/after keeps the place and replaces the rule; with them, moves it.
  assert.is((await add('d', '', [{ kind: 'room_member_count', is: '>=3' }])).status, 200);
  assert.equal(await order(), ['.m.rule.master', 'e', 'b', 'd', 'a', 'c', '.m.rule.suppress_notices']);
  const d = (await s.request('GET', rulePath('override', 'd'), tok)).body;
  assert.equal(d, { rule_id: 'd', default: false, enabled: true, conditions: [{ kind: 'room_member_count', is: '>=3' }], actions: ['notify'] });
  assert.is((await add('e', '?after=c')).status, 200);
  assert.equal(await order(), ['.m.rule.master', 'b', 'd', 'a', 'c', 'e', '.m.rule.suppress_notices']);

  for (const [q, why] of [
    ['?before=nosuch', 'missing anchor'],
    ['?after=.m.rule.suppress_notices', 'relative to a server-default rule'],
    ['?before=f', 'relative to itself'],
  ] as const) {
    const res = await add('f', q);
    assert.is(res.status, 400, why);
    assert.is(res.body.errcode, 'M_UNKNOWN', why);
  }
  assert.is((await s.request('GET', rulePath('override', 'f'), tok)).status, 404, 'failed puts create nothing');
  // User underride rules come before the default underrides.
  assert.is((await s.request('PUT', rulePath('underride', 'low'), { ...tok, body: { actions: [] } })).status, 200);
  const g = (await s.request('GET', `${P}/global/`, tok)).body;
  assert.equal(ids(g.underride), ['low', ...DEFAULT_UNDERRIDE]);
  assert.equal(g.underride[0].conditions, [], 'conditions default to none');
});

t('default rules: enabled and actions change, persist, and only for that user; they cannot be deleted', async ({ s }) => {
  const u = await registerUser(s, 'ptoggle');
  const other = await registerUser(s, 'pother');
  const tok = { token: u.access_token };
  const msg = rulePath('underride', '.m.rule.message');
  assert.is((await s.request('PUT', `${msg}/enabled`, { ...tok, body: { enabled: false } })).status, 200);
  assert.is((await s.request('PUT', `${msg}/actions`, { ...tok, body: { actions: ['notify', { set_tweak: 'highlight', value: false }] } })).status, 200);
  assert.is((await s.request('PUT', rulePath('override', '.m.rule.master', '/enabled'), { ...tok, body: { enabled: true } })).status, 200);

  for (let i = 0; i < 2; i++) {
    const rule = (await s.request('GET', msg, tok)).body;
    assert.equal(rule.enabled, false);
    assert.equal(rule.actions, ['notify', { set_tweak: 'highlight', value: false }]);
    assert.is(rule.default, true);
    assert.equal((await s.request('GET', `${msg}/enabled`, tok)).body, { enabled: false });
  }
  const g = (await s.request('GET', `${P}/`, tok)).body.global;
  assert.is(g.override[0].enabled, true, 'master enabled');
  assert.equal(ids(g.underride), DEFAULT_UNDERRIDE, 'order unchanged');

  const theirs = (await s.request('GET', msg, { token: other.access_token })).body;
  assert.equal([theirs.enabled, theirs.actions], [true, ['notify']], "another user's rules are untouched");

  for (const kind of ['underride', 'override']) {
    const del = await s.request('DELETE', rulePath(kind, kind === 'underride' ? '.m.rule.message' : '.m.rule.master'), tok);
    assert.is(del.status, 404, 'the spec lists only 404 for DELETE');
    assert.is(del.body.errcode, 'M_NOT_FOUND');
    assert.match(del.body.error, /cannot be deleted/);
  }
  assert.is((await s.request('GET', msg, tok)).status, 200, 'still there');
  assert.is((await s.request('PUT', msg, { ...tok, body: { actions: [] } })).status, 400, 'a default rule cannot be replaced by PUT');

  // enabled/actions of a user rule; unknown rules are 404.
  assert.is((await s.request('PUT', rulePath('room', '!r:hearth.test'), { ...tok, body: { actions: ['notify'] } })).status, 200);
  assert.is((await s.request('PUT', rulePath('room', '!r:hearth.test', '/enabled'), { ...tok, body: { enabled: false } })).status, 200);
  assert.is((await s.request('PUT', rulePath('room', '!r:hearth.test', '/actions'), { ...tok, body: { actions: [] } })).status, 200);
  assert.equal((await s.request('GET', rulePath('room', '!r:hearth.test'), tok)).body, { rule_id: '!r:hearth.test', default: false, enabled: false, actions: [] });
  assert.is((await s.request('PUT', rulePath('room', '!r:hearth.test'), { ...tok, body: { actions: ['notify'] } })).status, 200);
  assert.is((await s.request('GET', rulePath('room', '!r:hearth.test', '/enabled'), tok)).body.enabled, false, 'replacing a rule keeps enabled');
  for (const path of [rulePath('room', '!gone:hearth.test', '/enabled'), rulePath('underride', '.m.rule.nosuch', '/enabled')]) {
    const res = await s.request('PUT', path, { ...tok, body: { enabled: true } });
    assert.is(res.status, 404, path);
    assert.is(res.body.errcode, 'M_NOT_FOUND');
  }
  assert.is((await s.request('GET', rulePath('room', '!gone:hearth.test', '/actions'), tok)).status, 404);
});

t('invalid rule ids, kinds and bodies are 4xx; no token is 401', async ({ s }) => {
  const u = await registerUser(s, 'pinvalid');
  const tok = { token: u.access_token };
  const cases: [string, string, unknown, number][] = [
    ['override', '.mine', { actions: [] }, 400],
    ['override', 'a/b', { actions: [] }, 400],
    ['override', 'a\\b', { actions: [] }, 400],
    ['bogus', 'x', { actions: [] }, 400],
    ['override', 'x', {}, 400],
    ['override', 'x', { actions: 'notify' }, 400],
    ['override', 'x', { actions: ['explode'] }, 400],
    ['override', 'x', { actions: [{ set_tweak: 'highlight', value: 'yes' }] }, 400],
    ['override', 'x', { actions: [], conditions: {} }, 400],
    ['override', 'x', { actions: [], conditions: [{ key: 'type' }] }, 400],
    ['override', 'x', { actions: [], conditions: [{ kind: 'event_match', key: 'type' }] }, 400],
    ['override', 'x', { actions: [], conditions: [{ kind: 'event_property_is', key: 'k', value: { a: 1 } }] }, 400],
    ['override', 'x', { actions: [], conditions: [{ kind: 'room_member_count', is: 'two' }] }, 400],
    ['content', 'x', { actions: [] }, 400],
    ['room', 'not-a-room', { actions: [] }, 400],
    ['sender', 'not-a-user', { actions: [] }, 400],
  ];
  for (const [kind, id, body, status] of cases) {
    const res = await s.request('PUT', rulePath(kind, id), { ...tok, body });
    assert.is(res.status, status, `${kind}/${id} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
    assert.ok(['M_INVALID_PARAM', 'M_BAD_JSON', 'M_MISSING_PARAM'].includes(res.body.errcode), JSON.stringify(res.body));
    if (id !== 'x') assert.match(res.body.error, /rule id|Unknown push rule kind/i, 'rejected for its id or kind');
  }
  assert.is((await s.request('PUT', rulePath('override', 'x'), { ...tok, rawBody: '{not json', headers: { 'content-type': 'application/json' } })).status, 400);
  assert.is((await s.request('GET', rulePath('bogus', 'x'), tok)).status, 400);
  assert.is((await s.request('PUT', rulePath('underride', '.m.rule.call', '/enabled'), { ...tok, body: { enabled: 'no' } })).status, 400);
  assert.is((await s.request('PUT', rulePath('underride', '.m.rule.call', '/actions'), { ...tok, body: {} })).status, 400);
  assert.equal(ids((await s.request('GET', `${P}/`, tok)).body.global.override), DEFAULT_OVERRIDE, 'nothing was stored');
  assert.equal((await s.request('GET', rulePath('underride', '.m.rule.call', '/enabled'), tok)).body, { enabled: true });

  for (const [method, path] of [
    ['GET', `${P}/`],
    ['GET', `${P}/global/`],
    ['GET', rulePath('override', '.m.rule.master')],
    ['PUT', rulePath('override', 'x')],
    ['DELETE', rulePath('override', 'x')],
    ['PUT', rulePath('override', '.m.rule.master', '/enabled')],
    ['GET', rulePath('override', '.m.rule.master', '/actions')],
  ] as const) {
    const res = await s.request(method, path, method === 'PUT' ? { body: { actions: [], enabled: true } } : {});
    assert.is(res.status, 401, `${method} ${path}`);
  }
});

t.run();
