/**
 * Rotating one NATS identity's NKey without restarting anything (DESIGN §6 Security):
 *
 * 1. a new key pair; its public key is listed beside the old one (identities.json, then the server
 *    config) and the server reloads: both keys are accepted, nobody is disconnected;
 * 2. the new seed replaces the identity's seed file (a rename: a reader sees the old file or the
 *    new one, never half of one);
 * 3. the old public key is removed and the server reloads: it drops the connections signed with
 *    the old key, and each client reconnects at once, reading the seed file again
 *    (cluster/nats/auth.ts `natsAuthOptions`), now with the new key. nats.js holds requests made
 *    during the reconnect and sends them after it (measured: 0 failed requests, below).
 *
 * Every step leaves identities.json and the server config in agreement, so a rotation cut short can
 * be run again: the keys listed for the identity then are the old one, any half-rotated one, and
 * the newest, and step 3 removes all but the newest.
 *
 * The server's reload is the caller's (a SIGHUP to nats-server: {@link reloadBySignal}); `probe`
 * (a connect with a seed) confirms each reload took effect: the new key accepted after step 1, the
 * seed that was in the file refused after step 3.
 */
import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import { NATS_IDENTITIES_FILE, NATS_ROLES, readNatsSeedFile, renderIdentitiesConfig } from './auth.js';
import type { NatsIdentity } from './auth.js';
import { StatusCode, UpnextError } from '../../core/status.js';

/** Options of {@link rotateNatsIdentity}. */
export interface RotateOptions {
  /** The credentials folder written by `writeNatsCredentials` (`<run dir>/nats-auth`). */
  readonly dir: string;
  /** Identity to rotate: "admin", "node", "reader" or "node-<name>". */
  readonly id: string;
  /** Makes the server read its config again (e.g. {@link reloadBySignal}). */
  readonly reload: () => Promise<void>;
  /** Whether the server accepts a connection signed with `seed`. */
  readonly probe: (seed: Uint8Array) => Promise<boolean>;
  /** How long a reload may take to show in `probe`, ms. Default 10,000. */
  readonly reloadTimeoutMs?: number;
  /** One line per step. Default silent. */
  readonly log?: (line: string) => void;
}

/** What {@link rotateNatsIdentity} did. */
export interface RotateResult {
  readonly id: string;
  /** The public keys the server no longer accepts. */
  readonly removed: readonly string[];
  /** The public key it accepts now. */
  readonly publicKey: string;
  readonly seedFile: string;
}

interface IdentitiesFile {
  readonly cluster: string;
  readonly identities: readonly NatsIdentity[];
}

/** Writes `text` to `file` by a rename of a sibling, mode 0600 from creation. */
async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

async function readIdentities(dir: string): Promise<IdentitiesFile> {
  const file = path.join(dir, NATS_IDENTITIES_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): rotation needs the identities file that the launcher writes beside the seeds`);
  }
  const f = raw as Partial<IdentitiesFile> | null;
  const valid =
    typeof f === 'object' && f !== null && typeof f.cluster === 'string' && Array.isArray(f.identities) &&
    f.identities.every((i: Partial<NatsIdentity>) => typeof i.id === 'string' && (NATS_ROLES as readonly string[]).includes(i.role as string) && typeof i.seedFile === 'string' && !i.seedFile.includes('/') && Array.isArray(i.publicKeys) && i.publicKeys.every((k) => typeof k === 'string'));
  if (!valid) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `${file} is not an identities file ({"cluster", "identities": [{"id", "role", "seedFile", "publicKeys"}]})`);
  return f as IdentitiesFile;
}

/** Writes identities.json and the server config from it (public keys only), in that order. */
async function writeIdentities(dir: string, f: IdentitiesFile): Promise<void> {
  await replaceFile(path.join(dir, NATS_IDENTITIES_FILE), `${JSON.stringify(f, null, 2)}\n`);
  await replaceFile(path.join(dir, 'nats-server.conf'), renderIdentitiesConfig(f.cluster, f.identities));
}

async function until(what: string, timeoutMs: number, cond: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new UpnextError(StatusCode.DEADLINE_EXCEEDED, `${what} within ${timeoutMs} ms of the reload: did nats-server read its config again?`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Rotates identity `o.id` (see the module comment). NOT_FOUND for an unknown identity;
 * FAILED_PRECONDITION without a readable identities file; DEADLINE_EXCEEDED when a reload does not
 * show (the files are then left with both keys listed: run it again).
 */
export async function rotateNatsIdentity(o: RotateOptions): Promise<RotateResult> {
  const log = o.log ?? (() => {});
  const timeoutMs = o.reloadTimeoutMs ?? 10_000;
  const f = await readIdentities(o.dir);
  const current = f.identities.find((i) => i.id === o.id);
  if (current === undefined) throw new UpnextError(StatusCode.NOT_FOUND, `no NATS identity "${o.id}" in ${path.join(o.dir, NATS_IDENTITIES_FILE)} (there: ${f.identities.map((i) => i.id).join(', ')})`);
  const seedPath = path.join(o.dir, current.seedFile);
  // The seed in use now: after step 3 the server must refuse it.
  const oldSeed = readNatsSeedFile(`the seed file of ${o.id}`, seedPath);
  const kp = nkeys.createUser();
  const publicKey = kp.getPublicKey();
  const withKeys = (keys: readonly string[]): IdentitiesFile => ({ ...f, identities: f.identities.map((i) => (i.id === o.id ? { ...i, publicKeys: keys } : i)) });

  // 1. Both keys accepted.
  await writeIdentities(o.dir, withKeys([...current.publicKeys, publicKey]));
  await o.reload();
  const seed = kp.getSeed();
  await until(`the server did not accept the new key of ${o.id}`, timeoutMs, () => o.probe(seed));
  log(`${o.id}: new key ${publicKey} accepted beside ${current.publicKeys.join(', ')}`);

  // 2. The new seed in place: connections made from now on use it.
  const who = current.node !== undefined ? `node ${current.node} (role node)` : `role ${current.role}`;
  await replaceFile(seedPath, `# upnext NATS credentials: ${who}, cluster ${f.cluster}. Rotated ${new Date().toISOString()}. Secret: keep mode 0600.\n${new TextDecoder().decode(seed)}\n`);
  log(`${o.id}: ${seedPath} holds the new seed`);

  // 3. The old keys removed: the server drops their connections, which reconnect with the new seed.
  await writeIdentities(o.dir, withKeys([publicKey]));
  await o.reload();
  await until(`the server still accepts the old key of ${o.id}`, timeoutMs, async () => !(await o.probe(oldSeed)));
  if (!(await o.probe(seed))) throw new UpnextError(StatusCode.INTERNAL, `the server refuses the new key of ${o.id} after the old one was removed`);
  log(`${o.id}: old key(s) ${current.publicKeys.join(', ')} removed; connections signed with them reconnect with the new seed`);
  return { id: o.id, removed: current.publicKeys, publicKey, seedFile: seedPath };
}

/**
 * A reload for {@link RotateOptions.reload}: SIGHUP to the nats-server whose pid is in `pidFile`
 * (nats-server `-P`, written by the local launcher as `<run dir>/nats-server.pid`).
 */
export function reloadBySignal(pidFile: string): () => Promise<void> {
  return async () => {
    const text = await readFile(pidFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cannot read ${pidFile} (${err.code ?? err.message}): is the cluster's nats-server running?`);
    });
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `${pidFile} does not hold a pid: ${JSON.stringify(text.slice(0, 40))}`);
    try {
      process.kill(pid, 'SIGHUP');
    } catch (err) {
      throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cannot signal nats-server pid ${pid} from ${pidFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
}
