/**
 * NATS per-role credentials and subject permissions (DESIGN §6 Security). Three roles:
 *
 * - `node`: a node process. Serves and calls its cluster's subjects (`upnext.<cluster>.>`), publishes
 *   events and served rows, creates/updates the event and feature-log streams, reads and watches
 *   the shard-map bucket, writes its address record (`addr.<node>`) and its load report
 *   (`load.<node>`). It cannot write the shard map's assignments (`map`) or the model pointer, send
 *   item-admin (catalog) requests, delete or purge any stream, or touch anything outside its cluster.
 * - `admin`: an operator (`shardmap` CLI, the local launcher): everything on its cluster's streams,
 *   bucket and subjects, including writing the map and the model pointer and deleting streams.
 * - `reader`: offline readers (`skew`, the logged-rows trainer) and `shardmap show`/`model`:
 *   ordered consumers on the event and feature-log streams, reads of the shard-map bucket, node
 *   status queries; no publish to any data subject, no write.
 *
 * Identities are NKeys (Ed25519): the server config holds only public keys, each process holds its
 * role's seed in a file (mode 0600). The pure parts (permissions, server config text, seed parsing)
 * need no server; {@link writeNatsCredentials} is the file-writing edge.
 *
 * Per-node identities: each node the launcher starts gets its own `node` key granted only its own
 * `addr.<node>` and `load.<node>` records and its own status subject. Serving subjects (item-shard
 * and user-partition queue groups, the popular list) stay open to every node key, because shards
 * and partitions move between nodes. The shared `node` key (any node's records and status) is
 * always in the server config and is what a node added later (add-node) gets: one such node brings
 * back "write any node's records" — a holder can misdirect ranker or Recommend traffic, but cannot
 * change assignments or the model.
 */
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { nkeyAuthenticator, nkeys } from '@nats-io/nats-core';
import type { Authenticator } from '@nats-io/nats-core';
import { StatusCode, UpnextError } from '../../core/status.js';
import { replaceFile } from '../../core/replace-file.js';
import { renderNatsTlsBlock } from './server.js';
import { Subjects, clusterKvBucket, eventStreamName, servedStreamName, validateClusterName, validateNodeKeyToken } from '../../core/subjects.js';

/** The NATS identities of a cluster. */
export const NATS_ROLES = ['node', 'admin', 'reader'] as const;
export type NatsRole = (typeof NATS_ROLES)[number];

/** Allowed and denied subjects (NATS wildcards `*` and `>`); a deny wins over an allow. */
export interface SubjectPermission {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

/** One role's permissions, as nats-server's `permissions { … }` block. */
export interface NatsPermissions {
  readonly publish: SubjectPermission;
  readonly subscribe: SubjectPermission;
  /**
   * May publish one reply to the reply subject of a request it received (nats-server
   * `allow_responses`), without a publish grant on `_INBOX.>`. True for `node` (it answers
   * item-shard, user-partition, popular and node-status requests).
   */
  readonly allowResponses: boolean;
}

/** The JetStream API subjects that read a stream: info, message get, ordered/ephemeral consumers. */
function streamReadApi(stream: string): string[] {
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    // Consumer create: the old form (no name in the subject) and the 2.9+ form (name[.filter]).
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.*`,
    `$JS.API.CONSUMER.DELETE.${stream}.*`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
  ];
}

/** Every JetStream API operation on one stream (admin). */
function streamAdminApi(stream: string): string[] {
  return [
    `$JS.API.STREAM.*.${stream}`,
    `$JS.API.STREAM.MSG.*.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.*.${stream}`,
    `$JS.API.CONSUMER.*.${stream}.>`,
    `$JS.API.CONSUMER.*.*.${stream}.>`,
  ];
}

/** The subjects a cluster's JetStream objects live under. */
export interface ClusterJetStreamNames {
  readonly events: string;
  readonly served: string;
  /** The KV bucket's stream (`KV_<bucket>`). */
  readonly kvStream: string;
  /** The KV bucket's subject prefix (`$KV.<bucket>`). */
  readonly kvPrefix: string;
}

/** Stream and KV names of `cluster` (core/subjects.ts). */
export function clusterJetStreamNames(cluster: string): ClusterJetStreamNames {
  validateClusterName(cluster);
  const bucket = clusterKvBucket(cluster);
  return { events: eventStreamName(cluster), served: servedStreamName(cluster), kvStream: `KV_${bucket}`, kvPrefix: `$KV.${bucket}` };
}

/**
 * The permissions of `role` in `cluster`. Pure; the integration test (test/integration/nats-auth)
 * checks each grant and each denial against a real nats-server.
 */
export function rolePermissions(cluster: string, role: NatsRole, node?: string): NatsPermissions {
  const n = clusterJetStreamNames(cluster);
  // A node's own identity may write only its own records and answer only its own status subject;
  // the shared `node` key (node === undefined) any node's (for nodes started outside the launcher,
  // e.g. by add-node).
  if (node !== undefined) {
    if (role !== 'node') throw new TypeError(`a per-node identity needs role node, got ${role}`);
    validateNodeKeyToken(node);
  }
  const ownRecord = node ?? '*';
  const own = `upnext.${cluster}.>`;
  const inbox = '_INBOX.>';
  switch (role) {
    case 'node':
      return {
        publish: {
          allow: [
            own,
            '$JS.API.INFO',
            // events + feature log: created or retention-updated by whichever node starts first
            ...[n.events, n.served].flatMap((s) => [`$JS.API.STREAM.CREATE.${s}`, `$JS.API.STREAM.UPDATE.${s}`]),
            ...streamReadApi(n.events),
            `$JS.API.STREAM.INFO.${n.served}`,
            // the shard-map bucket: created when a node starts before `shardmap init` (a create
            // with other settings than the existing bucket's is refused by the server), read, watched
            `$JS.API.STREAM.CREATE.${n.kvStream}`,
            ...streamReadApi(n.kvStream),
            // its own records: addresses (shardmap/kv-store.ts nodeAddressKey) and load report;
            // never the map key, which only admin operations write
            `${n.kvPrefix}.addr.${ownRecord}`,
            `${n.kvPrefix}.load.${ownRecord}`,
            // flow-control replies of push consumers (the KV watch)
            '$JS.FC.>',
          ],
          deny: [`${n.kvPrefix}.map`, `${n.kvPrefix}.model`, `upnext.${cluster}.item.*.admin`],
        },
        // Per node: the serving subjects every node may host (shards and partitions move between
        // nodes) and its own status subject, not another node's.
        subscribe: {
          allow:
            node === undefined
              ? [own, inbox]
              : [
                  `upnext.${cluster}.item.*.search`,
                  `upnext.${cluster}.item.*.search.*`,
                  `upnext.${cluster}.item.*.admin`,
                  `upnext.${cluster}.user.*.get`,
                  Subjects.popular(cluster),
                  Subjects.nodeStatus(cluster, node),
                  inbox,
                ],
          deny: [],
        },
        allowResponses: true,
      };
    case 'admin':
      return {
        publish: {
          allow: [own, '$JS.API.INFO', '$JS.API.STREAM.NAMES', '$JS.API.STREAM.LIST', ...[n.events, n.served, n.kvStream].flatMap(streamAdminApi), `${n.kvPrefix}.>`, '$JS.FC.>', '$JS.ACK.>'],
          deny: [],
        },
        subscribe: { allow: [inbox], deny: [] },
        allowResponses: false,
      };
    case 'reader':
      return {
        publish: {
          // node status requests are read-only queries (`shardmap model` without --version)
          allow: [`upnext.${cluster}.node.*.status`, '$JS.API.INFO', ...[n.events, n.served, n.kvStream].flatMap(streamReadApi), '$JS.FC.>'],
          deny: [],
        },
        subscribe: { allow: [inbox], deny: [] },
        allowResponses: false,
      };
  }
}

/** One user of the server config: a public NKey and its role's permissions. */
export interface NatsUserEntry {
  readonly role: NatsRole;
  /** Public user NKey ("U…"). */
  readonly publicKey: string;
  readonly permissions: NatsPermissions;
}

const q = (s: string) => JSON.stringify(s);
const list = (xs: readonly string[]) => `[${xs.map(q).join(', ')}]`;

/**
 * nats-server config text with an `authorization { users: [...] }` block: one NKey user per entry
 * with its permissions. Every subject is a quoted string, so `$JS…`/`$KV…` are never read as config
 * variables. Pure (unit-tested); contains public keys only.
 */
export function renderAuthorizationConfig(users: readonly NatsUserEntry[]): string {
  const perm = (label: string, p: SubjectPermission) =>
    `        ${label}: {\n          allow: ${list(p.allow)}\n${p.deny.length > 0 ? `          deny: ${list(p.deny)}\n` : ''}        }`;
  const entries = users.map(
    (u) =>
      `    # role ${u.role}\n    {\n      nkey: ${q(u.publicKey)}\n      permissions: {\n${perm('publish', u.permissions.publish)}\n${perm('subscribe', u.permissions.subscribe)}\n${u.permissions.allowResponses ? '        allow_responses: true\n' : ''}      }\n    }`,
  );
  return `# upnext: per-role NATS identities (cluster/nats/auth.ts). Public keys only.\nauthorization {\n  users: [\n${entries.join('\n')}\n  ]\n}\n`;
}

/**
 * Parses a credentials file's text: `#` comment lines, then one user seed ("SU…"). Returns the
 * seed's bytes; a TypeError naming `name` when there is none or it is not a valid user seed.
 */
export function parseNatsSeed(name: string, text: string): Uint8Array {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  const seed = lines[0];
  if (seed === undefined || lines.length !== 1) throw new TypeError(`${name}: expected one NKey user seed line (SU…), found ${lines.length} non-comment lines`);
  const bytes = new TextEncoder().encode(seed);
  let publicKey: string;
  try {
    publicKey = nkeys.fromSeed(bytes).getPublicKey();
  } catch (err) {
    throw new TypeError(`${name}: not a valid NKey seed (${(err as Error).message})`);
  }
  if (!publicKey.startsWith('U')) throw new TypeError(`${name}: the seed is not a user seed (public key ${publicKey.slice(0, 1)}…, expected U…)`);
  return bytes;
}

/** Reads and checks a credentials file; a TypeError naming `name` (the knob or flag) on failure. */
export function readNatsSeedFile(name: string, file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TypeError(`${name}: cannot read ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseNatsSeed(`${name} ${JSON.stringify(file)}`, text);
}

/**
 * Spread into nats.js `connect()` options: `{ authenticator }` signing the server's nonce with the
 * seed in `credsFile` when set, `{}` otherwise (no credentials). The file is read and checked now,
 * so a bad path fails before the connect, naming `name`; and read again at every reconnect, so a
 * key rotated in place (cluster/nats/rotate.ts: the new seed written, the old key removed from the
 * server, which then drops the connections signed with it) is picked up without a restart. A file
 * that cannot be read or parsed at a reconnect (mid-replace, removed) keeps the last good seed.
 */
export function natsAuthOptions(credsFile: string | undefined, name = 'config nats.credsFile'): { authenticator?: Authenticator } {
  if (credsFile === undefined) return {};
  let seed = readNatsSeedFile(name, credsFile);
  let lastProblem: string | undefined;
  return {
    authenticator: nkeyAuthenticator(() => {
      try {
        seed = readNatsSeedFile(name, credsFile);
        lastProblem = undefined;
      } catch (err) {
        // Keep the last good seed (the server says whether it still holds), and say so once per problem.
        const problem = (err as Error).message;
        if (problem !== lastProblem) console.error(`nats: reconnecting with the last good seed: ${problem}`);
        lastProblem = problem;
      }
      return seed;
    }),
  };
}

/** The file beside the seeds that lists every identity's public keys (no secret), for rotation. */
export const NATS_IDENTITIES_FILE = 'identities.json';
/** The server config written beside it. */
export const NATS_SERVER_CONFIG_FILE = 'nats-server.conf';

/** One identity of a cluster's credentials folder, as {@link NATS_IDENTITIES_FILE} lists it. */
export interface NatsIdentity {
  /** "admin", "node", "reader" (the shared role keys) or "node-<name>" (a node's own key). */
  readonly id: string;
  readonly role: NatsRole;
  /** The node whose own key this is (its records and status only); absent for a role key. */
  readonly node?: string;
  /** Seed file name in the folder, e.g. "node-n1.nk". */
  readonly seedFile: string;
  /** Public keys the server accepts for it: one, or two while a rotation is in progress. */
  readonly publicKeys: readonly string[];
}

/** The server's TLS files, when it serves TLS (in the config file, so a reload keeps them). */
export interface NatsServerTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** {@link NATS_IDENTITIES_FILE}: what the server config is rendered from. */
export interface NatsIdentitiesFile {
  readonly cluster: string;
  readonly tls?: NatsServerTlsFiles;
  readonly identities: readonly NatsIdentity[];
}

/**
 * nats-server config text: every public key with its identity's permissions, and the `tls` block
 * when set. TLS lives in the file, not only on the command line: a reload (SIGHUP) reads the file
 * alone, and refuses a config whose TLS differs from the running one.
 */
export function renderNatsServerConfig(f: NatsIdentitiesFile): string {
  const auth = renderAuthorizationConfig(
    f.identities.flatMap((i) => {
      const permissions = rolePermissions(f.cluster, i.role, i.node);
      return i.publicKeys.map((publicKey) => ({ role: i.role, publicKey, permissions }));
    }),
  );
  if (f.tls === undefined) return auth;
  return `${auth}${renderNatsTlsBlock(f.tls)}`;
}

/** Reads and checks `<dir>/identities.json`; FAILED_PRECONDITION naming what is wrong. */
export async function readNatsIdentities(dir: string): Promise<NatsIdentitiesFile> {
  const file = path.join(dir, NATS_IDENTITIES_FILE);
  const bad = (why: string) => new UpnextError(StatusCode.FAILED_PRECONDITION, `${file}: ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw bad(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): rotation needs the identities file the launcher writes beside the seeds`);
  }
  const f = raw as Partial<NatsIdentitiesFile> | null;
  if (typeof f !== 'object' || f === null || typeof f.cluster !== 'string' || !Array.isArray(f.identities)) throw bad('not {"cluster", "identities": [...]}');
  const tls = f.tls;
  if (tls !== undefined && (typeof tls !== 'object' || tls === null || ![tls.certFile, tls.keyFile, tls.caFile].every((x) => typeof x === 'string'))) throw bad('"tls" must hold certFile, keyFile and caFile');
  const ids = new Set<string>();
  for (const i of f.identities as Partial<NatsIdentity>[]) {
    const what = `identity ${JSON.stringify(i?.id)}`;
    if (typeof i?.id !== 'string' || ids.has(i.id)) throw bad(`${what}: a missing or repeated id`);
    ids.add(i.id);
    if (!(NATS_ROLES as readonly string[]).includes(i.role as string)) throw bad(`${what}: role must be one of ${NATS_ROLES.join(', ')}`);
    if (i.node !== undefined && (i.role !== 'node' || typeof i.node !== 'string')) throw bad(`${what}: "node" belongs to a role node identity`);
    if (typeof i.seedFile !== 'string' || i.seedFile.includes('/') || i.seedFile.startsWith('.')) throw bad(`${what}: seedFile must be a file name in the folder`);
    if (!Array.isArray(i.publicKeys) || i.publicKeys.length === 0 || !i.publicKeys.every((k) => typeof k === 'string' && isUserPublicKey(k))) throw bad(`${what}: publicKeys must be NKey user public keys (U…)`);
  }
  renderNatsServerConfig(f as NatsIdentitiesFile); // the node names and cluster must render too
  return f as NatsIdentitiesFile;
}

function isUserPublicKey(k: string): boolean {
  try {
    nkeys.fromPublic(k);
    return k.startsWith('U');
  } catch {
    return false;
  }
}

/**
 * Writes identities.json and the server config rendered from it, each by a rename. Both texts are
 * rendered first, so a value that cannot render changes nothing; a crash between the two renames
 * leaves identities.json the newer, and the next write renders the config from it again.
 */
export async function writeNatsIdentities(dir: string, f: NatsIdentitiesFile): Promise<void> {
  const config = renderNatsServerConfig(f);
  await replaceFile(path.join(dir, NATS_IDENTITIES_FILE), `${JSON.stringify(f, null, 2)}\n`);
  await replaceFile(path.join(dir, NATS_SERVER_CONFIG_FILE), config);
}

/** What {@link writeNatsCredentials} wrote. */
export interface NatsCredentialFiles {
  /** Folder holding everything below (mode 0700). */
  readonly dir: string;
  /** Seed file of each role (mode 0600). */
  readonly creds: Readonly<Record<NatsRole, string>>;
  /** nats-server config with the users and permissions (public keys only; mode 0600). */
  readonly serverConfig: string;
  /** Public key of each role, for logs and tests. */
  readonly publicKeys: Readonly<Record<NatsRole, string>>;
  /** Seed file of each named node's own identity (`node-<name>.nk`, role node, its own records only). */
  readonly nodes: Readonly<Record<string, string>>;
}

/** Writes a fresh user NKey's seed to `file` (0600 from creation) and returns its public key. */
export async function writeSeedFile(file: string, comment: string, kp = nkeys.createUser()): Promise<string> {
  const seed = new TextDecoder().decode(kp.getSeed());
  // 0600 from the first byte, in place by a rename (a process reconnecting reads the old or the new).
  await replaceFile(file, `# ${comment} Secret: keep mode 0600.\n${seed}\n`, 0o600);
  return kp.getPublicKey();
}

/**
 * Generates a fresh NKey per role for `cluster`, and one per name in `nodes` (role node, allowed to
 * write only its own address and load records), writes `<dir>/<role>.nk` and `<dir>/node-<name>.nk`
 * (the seeds, 0600), `<dir>/nats-server.conf` (users + permissions) and `<dir>/identities.json`
 * (every identity's public keys, what a live rotation rewrites the config from: cluster/nats/rotate.ts).
 * New keys every call: a restart rotates them.
 */
export async function writeNatsCredentials(dir: string, cluster: string, nodes: readonly string[] = [], tls?: NatsServerTlsFiles): Promise<NatsCredentialFiles> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const creds = {} as Record<NatsRole, string>;
  const publicKeys = {} as Record<NatsRole, string>;
  const identities: NatsIdentity[] = [];
  for (const role of NATS_ROLES) {
    const file = path.join(dir, `${role}.nk`);
    const publicKey = await writeSeedFile(file, `upnext NATS credentials: role ${role}, cluster ${cluster}.`);
    creds[role] = file;
    publicKeys[role] = publicKey;
    identities.push({ id: role, role, seedFile: `${role}.nk`, publicKeys: [publicKey] });
  }
  // No prototype: a node named "constructor" must not read Object's.
  const nodeFiles: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const node of new Set(nodes)) {
    rolePermissions(cluster, 'node', node); // validates the name first
    const file = path.join(dir, `node-${node}.nk`);
    const publicKey = await writeSeedFile(file, `upnext NATS credentials: node ${node} (role node), cluster ${cluster}.`);
    nodeFiles[node] = file;
    identities.push({ id: `node-${node}`, role: 'node', node, seedFile: `node-${node}.nk`, publicKeys: [publicKey] });
  }
  await writeNatsIdentities(dir, { cluster, ...(tls !== undefined ? { tls: { certFile: tls.certFile, keyFile: tls.keyFile, caFile: tls.caFile } } : {}), identities });
  return { dir, creds, serverConfig: path.join(dir, NATS_SERVER_CONFIG_FILE), publicKeys, nodes: nodeFiles };
}

/** A permission violation as nats.js reports it (PermissionViolationError), read structurally. */
export interface NatsPermissionDenial {
  readonly operation: 'publish' | 'subscription';
  readonly subject: string;
}

/**
 * The permission violation behind `err` (itself or along its `cause` chain), or undefined.
 * Structural, not `instanceof`: the kv and jetstream packages may carry their own copy of the class.
 */
export function permissionDenial(err: unknown): NatsPermissionDenial | undefined {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const x = e as { name?: unknown; operation?: unknown; subject?: unknown };
    if (x.name === 'PermissionViolationError' && (x.operation === 'publish' || x.operation === 'subscription') && typeof x.subject === 'string') {
      return { operation: x.operation, subject: x.subject };
    }
  }
  return undefined;
}

/** Whether `err` (or its cause chain) is the server refusing the connection's credentials. */
export function isAuthorizationRefused(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { name?: unknown }).name === 'AuthorizationError') return true;
  }
  return false;
}

/**
 * The config's `nats` section: how this process authenticates to NATS, and whether the local
 * launcher turns authentication on.
 */
export interface NatsSection {
  /**
   * The local launcher (`make run`, tests) generates per-role NKeys under `<runDir>/nats-auth/`,
   * starts nats-server with their permissions, connects as `admin` and starts the nodes with the
   * `node` credentials. Default false (no authentication: any local client may connect).
   */
  readonly auth: boolean;
  /**
   * NKey seed file this process connects with (one "SU…" line; `#` comments allowed). Default
   * unset: connect without credentials. Set by the launcher for its nodes when `auth` is on; set it
   * yourself for a node joining a NATS server that requires credentials. Checked at load.
   */
  readonly credsFile?: string;
}

const NATS_KEYS = ['auth', 'credsFile'] as const;

/**
 * Validates the `nats` section (a TypeError naming the knob): `auth` a boolean (default false),
 * `credsFile` unset or a readable file holding one NKey user seed.
 */
export function resolveNatsSection(input: Record<string, unknown>): NatsSection {
  for (const k of Object.keys(input)) {
    if (!(NATS_KEYS as readonly string[]).includes(k)) throw new TypeError(`config nats.${k} is not a known option`);
  }
  const auth = input.auth ?? false;
  if (typeof auth !== 'boolean') throw new TypeError(`config nats.auth must be true or false, got ${JSON.stringify(auth)}`);
  const credsFile = input.credsFile;
  if (credsFile === undefined) return Object.freeze({ auth });
  if (typeof credsFile !== 'string' || credsFile.length === 0) throw new TypeError(`config nats.credsFile must be a non-empty string, got ${JSON.stringify(credsFile)}`);
  readNatsSeedFile('config nats.credsFile', credsFile);
  return Object.freeze({ auth, credsFile });
}

/**
 * A sentence for a person when `err` is NATS refusing access: which permission is missing (the
 * operation and subject), or that the credentials were refused. `credentials` says what was used
 * (e.g. `--creds admin.nk`, or "no credentials"). Undefined for any other error.
 */
export function describeNatsAccessError(err: unknown, credentials: string): string | undefined {
  const denial = permissionDenial(err);
  if (denial !== undefined) {
    const role = denial.subject.startsWith('$KV.') || denial.subject.startsWith('$JS.API.STREAM.') ? ' (writes to the shard map, the model key and stream changes need the admin role)' : '';
    return `permission denied: the NATS server refused ${denial.operation} on "${denial.subject}" for ${credentials}${role}`;
  }
  if (isAuthorizationRefused(err)) return `the NATS server refused ${credentials} (authorization violation: unknown key, wrong seed, or the server requires credentials)`;
  return undefined;
}
