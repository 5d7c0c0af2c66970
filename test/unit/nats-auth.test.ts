/**
 * The pure parts of cluster/nats/auth.ts: what each role may publish and subscribe (evaluated with
 * NATS's wildcard rules, deny over allow), the server config text, seed-file parsing, the config
 * section's validation, and the error descriptions the CLI prints. The real server's verdicts are
 * in test/integration/nats-auth.test.ts.
 */
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import {
  clusterJetStreamNames,
  describeNatsAccessError,
  natsAuthOptions,
  parseNatsSeed,
  permissionDenial,
  renderAuthorizationConfig,
  resolveNatsSection,
  rolePermissions,
} from '../../cluster/nats/auth.js';
import type { NatsRole, SubjectPermission } from '../../cluster/nats/auth.js';
import { describeConfig, resolveConfig } from '../../cluster/config.js';
import { Subjects } from '../../core/subjects.js';
import { nodeAddressKey } from '../../shardmap/kv-store.js';

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
const permits = (p: SubjectPermission, subject: string) => p.allow.some((a) => matches(a, subject)) && !p.deny.some((d) => matches(d, subject));

const C = 'prod-eu';
const n = clusterJetStreamNames(C);
const pub = (role: NatsRole, subject: string) => permits(rolePermissions(C, role).publish, subject);
const sub = (role: NatsRole, subject: string) => permits(rolePermissions(C, role).subscribe, subject);

t.test('the subject matcher follows NATS rules', async (t) => {
  t.ok(matches('a.>', 'a.b.c'));
  t.notOk(matches('a.>', 'a'));
  t.ok(matches('a.*.c', 'a.b.c'));
  t.notOk(matches('a.*', 'a.b.c'));
});

t.test('names: streams and bucket of the cluster', async (t) => {
  t.same(n, { events: 'UPNEXT_PROD_EU_EVENTS', served: 'UPNEXT_PROD_EU_SERVED', kvStream: 'KV_upnext_prod_eu_cluster', kvPrefix: '$KV.upnext_prod_eu_cluster' });
  t.throws(() => rolePermissions('bad.name', 'node'), TypeError);
});

t.test('node: serves and calls its cluster, writes address records and load; never the map or model key, item admin, deletes or other clusters', async (t) => {
  for (const s of [Subjects.itemSearch(C, 3), Subjects.userGet(C, 9), Subjects.popular(C), Subjects.nodeStatus(C, 'n2'), Subjects.events(C, 5), Subjects.served(C)]) {
    t.ok(pub('node', s), `publish ${s}`);
    t.ok(sub('node', s), `subscribe ${s}`);
  }
  t.ok(sub('node', '_INBOX.abc.def'), 'reply inboxes');
  for (const s of [`${n.kvPrefix}.${nodeAddressKey('n1')}`, `${n.kvPrefix}.load.n1`, `$JS.API.STREAM.CREATE.${n.events}`, `$JS.API.STREAM.UPDATE.${n.served}`, `$JS.API.STREAM.INFO.${n.kvStream}`, `$JS.API.DIRECT.GET.${n.kvStream}.$KV.upnext_prod_eu_cluster.map`, `$JS.API.CONSUMER.CREATE.${n.events}.oc_1.upnext.${C}.events.2`, `$JS.API.CONSUMER.MSG.NEXT.${n.events}.oc_1`]) {
    t.ok(pub('node', s), `publish ${s}`);
  }
  for (const s of [`${n.kvPrefix}.map`, `${n.kvPrefix}.model`, `${n.kvPrefix}.addr.n1.x`, `${n.kvPrefix}.other`, Subjects.itemAdmin(C, 0), `$JS.API.STREAM.DELETE.${n.events}`, `$JS.API.STREAM.PURGE.${n.kvStream}`, `$JS.API.STREAM.UPDATE.${n.kvStream}`, `$JS.API.STREAM.DELETE.${n.kvStream}`, Subjects.itemSearch('other', 0), '$KV.upnext_other_cluster.map', '$SYS.REQ.SERVER.PING']) {
    t.notOk(pub('node', s), `no publish ${s}`);
  }
  t.notOk(sub('node', 'upnext.other.>'), 'no subscribe to another cluster');
  t.ok(rolePermissions(C, 'node').allowResponses, 'answers requests without a publish grant on _INBOX.>');
  t.notOk(pub('node', '_INBOX.x'), 'and has none');
});

t.test('a per-node identity writes only its own address and load records; the rest is the node role', async (t) => {
  const own = rolePermissions(C, 'node', 'n1');
  t.ok(permits(own.publish, `${n.kvPrefix}.${nodeAddressKey('n1')}`), 'its address record');
  t.ok(permits(own.publish, `${n.kvPrefix}.load.n1`), 'its load report');
  for (const s of [`${n.kvPrefix}.${nodeAddressKey('n2')}`, `${n.kvPrefix}.load.n2`, `${n.kvPrefix}.map`, `${n.kvPrefix}.model`]) t.notOk(permits(own.publish, s), `no publish ${s}`);
  for (const s of [Subjects.itemSearch(C, 3), Subjects.events(C, 5), Subjects.served(C), `$JS.API.CONSUMER.MSG.NEXT.${n.events}.oc_1`]) t.ok(permits(own.publish, s), `publish ${s}`);
  for (const s of [Subjects.itemSearch(C, 3), Subjects.itemAdmin(C, 0), Subjects.userGet(C, 9), Subjects.popular(C), Subjects.nodeStatus(C, 'n1'), '_INBOX.x.y']) t.ok(permits(own.subscribe, s), `subscribe ${s}`);
  for (const s of [Subjects.nodeStatus(C, 'n2'), Subjects.events(C, 0), Subjects.served(C), 'upnext.other.item.0.search']) t.notOk(permits(own.subscribe, s), `no subscribe ${s}`);
  t.throws(() => rolePermissions(C, 'admin', 'n1'), TypeError, 'only the node role is per node');
  t.throws(() => rolePermissions(C, 'node', 'a.b'), TypeError, 'a name that is not one key token');
});

t.test('admin: the map, the model key, item admin and every operation on the cluster\'s streams; nothing of another cluster', async (t) => {
  for (const s of [`${n.kvPrefix}.map`, `${n.kvPrefix}.model`, `${n.kvPrefix}.addr.n1`, Subjects.itemAdmin(C, 1), Subjects.nodeStatus(C, 'n3'), `$JS.API.STREAM.DELETE.${n.events}`, `$JS.API.STREAM.CREATE.${n.kvStream}`, `$JS.API.STREAM.MSG.GET.${n.kvStream}`, `$JS.API.CONSUMER.MSG.NEXT.${n.served}.c1`, `$JS.API.CONSUMER.DURABLE.CREATE.${n.served}.d1`]) {
    t.ok(pub('admin', s), `publish ${s}`);
  }
  for (const s of ['$KV.upnext_other_cluster.map', '$JS.API.STREAM.DELETE.UPNEXT_OTHER_EVENTS', Subjects.itemSearch('other', 0)]) t.notOk(pub('admin', s), `no publish ${s}`);
  t.notOk(sub('admin', Subjects.itemSearch(C, 0)), 'admin cannot pose as an item shard');
});

t.test('reader: stream reads and map reads; no data subject, no write, no serving subscription', async (t) => {
  for (const s of [`$JS.API.STREAM.INFO.${n.served}`, `$JS.API.CONSUMER.CREATE.${n.served}.oc.upnext.${C}.served`, `$JS.API.CONSUMER.MSG.NEXT.${n.events}.oc`, `$JS.API.CONSUMER.DELETE.${n.events}.oc`, `$JS.API.DIRECT.GET.${n.kvStream}.$KV.upnext_prod_eu_cluster.map`]) {
    t.ok(pub('reader', s), `publish ${s}`);
  }
  for (const s of [`${n.kvPrefix}.map`, `${n.kvPrefix}.model`, `${n.kvPrefix}.addr.n1`, `${n.kvPrefix}.load.n1`, Subjects.events(C, 0), Subjects.served(C), Subjects.itemSearch(C, 0), `$JS.API.STREAM.CREATE.${n.served}`, `$JS.API.STREAM.UPDATE.${n.events}`, `$JS.API.STREAM.DELETE.${n.events}`, `$JS.API.STREAM.PURGE.${n.served}`]) {
    t.notOk(pub('reader', s), `no publish ${s}`);
  }
  t.ok(pub('reader', Subjects.nodeStatus(C, 'n1')), 'node status queries (read-only)');
  t.notOk(sub('reader', Subjects.userGet(C, 0)));
  t.ok(sub('reader', '_INBOX.x.y'));
});

t.test('server config: quoted subjects, public keys, allow_responses only where granted', async (t) => {
  const node = nkeys.createUser();
  const reader = nkeys.createUser();
  const text = renderAuthorizationConfig([
    { role: 'node', publicKey: node.getPublicKey(), permissions: rolePermissions(C, 'node') },
    { role: 'reader', publicKey: reader.getPublicKey(), permissions: rolePermissions(C, 'reader') },
  ]);
  t.match(text, /authorization \{\n  users: \[/);
  t.match(text, `nkey: "${node.getPublicKey()}"`);
  t.match(text, `"$KV.upnext_prod_eu_cluster.model"`, 'the denied model key, quoted ($ would start a variable unquoted)');
  t.notMatch(text, /[^"]\$(JS|KV)/, 'every $-subject is inside quotes');
  t.equal(text.split('allow_responses: true').length - 1, 1, 'one role answers requests');
  t.notOk(text.includes(new TextDecoder().decode(node.getSeed())), 'no seed in the server config');
});

t.test('seed files: comments, one user seed; anything else is a TypeError naming the file', async (t) => {
  const user = nkeys.createUser();
  const seed = new TextDecoder().decode(user.getSeed());
  t.equal(new TextDecoder().decode(parseNatsSeed('f', `# role node\n\n${seed}\n`)), seed);
  t.throws(() => parseNatsSeed('creds.nk', '# nothing\n'), { name: 'TypeError', message: /creds\.nk: expected one NKey user seed line .*found 0/ });
  t.throws(() => parseNatsSeed('creds.nk', `${seed}\n${seed}\n`), { message: /found 2/ });
  t.throws(() => parseNatsSeed('creds.nk', 'SUNOTASEED'), { message: /creds\.nk: not a valid NKey seed/ });
  t.throws(() => parseNatsSeed('creds.nk', new TextDecoder().decode(nkeys.createAccount().getSeed())), { message: /not a user seed .*expected U/ });
});

t.test('config section nats: defaults, validation naming the knob, seed checked at load', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'upnext-nats-auth-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.same(resolveConfig().nats, { auth: false }, 'default: off, no credentials');
  t.same(resolveNatsSection({ auth: true }), { auth: true });
  t.throws(() => resolveConfig({ nats: { auth: 'yes' as unknown as boolean } }), { name: 'TypeError', message: /config nats\.auth must be true or false/ });
  t.throws(() => resolveConfig({ nats: { creds: 'x' } as never }), { message: /config nats\.creds is not a known option/ });
  t.throws(() => resolveConfig({ nats: { credsFile: path.join(dir, 'missing.nk') } }), { message: /config nats\.credsFile: cannot read .*missing\.nk.*ENOENT/ });
  await writeFile(path.join(dir, 'bad.nk'), 'hello\n');
  t.throws(() => resolveConfig({ nats: { credsFile: path.join(dir, 'bad.nk') } }), { message: /config nats\.credsFile .*bad\.nk.*not a valid NKey seed/ });
  const good = path.join(dir, 'node.nk');
  await writeFile(good, `${new TextDecoder().decode(nkeys.createUser().getSeed())}\n`, { mode: 0o600 });
  t.same(resolveConfig({ nats: { credsFile: good } }).nats, { auth: false, credsFile: good });
  t.same(natsAuthOptions(undefined), {}, 'no file, no authenticator');
  t.type(natsAuthOptions(good).authenticator, 'function');
  t.throws(() => natsAuthOptions(path.join(dir, 'missing.nk'), '--creds'), { message: /^--creds: cannot read/ });
  const keys = describeConfig().map((k) => k.key);
  t.ok(keys.includes('nats.auth') && keys.includes('nats.credsFile'), 'both knobs are documented');
  t.equal(describeConfig().find((k) => k.key === 'nats.auth')?.default, 'false');
});

t.test('access errors: the missing permission named from the error or its cause; others left alone', async (t) => {
  const violation = Object.assign(new Error('Permissions Violation for Publish to "$KV.b.model"'), { name: 'PermissionViolationError', operation: 'publish', subject: '$KV.b.model' });
  const wrapped = new Error('kv put failed', { cause: violation });
  t.same(permissionDenial(wrapped), { operation: 'publish', subject: '$KV.b.model' });
  t.equal(describeNatsAccessError(wrapped, '--creds node.nk'), 'permission denied: the NATS server refused publish on "$KV.b.model" for --creds node.nk (writes to the shard map, the model key and stream changes need the admin role)');
  const sub = Object.assign(new Error('x'), { name: 'PermissionViolationError', operation: 'subscription', subject: 'upnext.c.user.0.get' });
  t.equal(describeNatsAccessError(sub, 'the reader credentials'), 'permission denied: the NATS server refused subscription on "upnext.c.user.0.get" for the reader credentials');
  const auth = Object.assign(new Error('Authorization Violation'), { name: 'AuthorizationError' });
  t.match(describeNatsAccessError(auth, 'no credentials'), /^the NATS server refused no credentials \(authorization violation/);
  t.equal(describeNatsAccessError(new Error('timeout'), 'x'), undefined);
  t.equal(permissionDenial({ name: 'PermissionViolationError', operation: 'publish' }), undefined, 'no subject: not a violation');
});
