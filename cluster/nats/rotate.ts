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
 *    during the reconnect and sends them after it; a request in flight on the dropped connection
 *    loses its reply (test/integration/nats-rotate.test.ts: 1-2 of ~170 at 200 requests/s).
 *
 * The server config is always rendered from identities.json (re-read before each write, so only
 * this identity's entry changes), so a rotation cut short can be run again: the keys listed for
 * the identity are then the old one, any half-rotated one and the newest, and step 3 removes all
 * but the newest. One rotation at a time per folder (a lock file). A copy of the seed outside the
 * folder (a node started by hand elsewhere) must be replaced between steps 2 and 3, or that process
 * is refused at its next reconnect.
 *
 * The server's reload is the caller's (a SIGHUP to nats-server: {@link reloadBySignal}); `probe`
 * (a connect with a seed) confirms the server takes the current seed before anything changes, and
 * that each reload took effect: the new key accepted after step 1, the old seed refused after step 3.
 */
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { nkeyAuthenticator, nkeys } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { ConnectionOptions } from '@nats-io/transport-node';
import { readNatsIdentities, readNatsSeedFile, writeNatsIdentities, writeSeedFile } from './auth.js';
import type { NatsIdentitiesFile } from './auth.js';
import { StatusCode, UpnextError } from '../../core/status.js';

/** Options of {@link rotateNatsIdentity}. */
export interface RotateOptions {
  /** The credentials folder written by `writeNatsCredentials` (`<run dir>/nats-auth`). */
  readonly dir: string;
  /** Identity to rotate: "admin", "node", "reader" or "node-<name>". */
  readonly id: string;
  /** Makes the server read its config again (e.g. {@link reloadBySignal}). */
  readonly reload: () => Promise<void>;
  /**
   * Whether a connection signed with `seed` opens. A refusal and a server out of reach both read
   * false, so every "refused" the rotation relies on is paired with an "accepted" of the other seed
   * (the current seed must open before anything changes; the new one after the old is refused).
   */
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

/** A lock file in the folder: one rotation at a time (each rewrites the shared identities file). */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(dir, 'rotate.lock');
  let fh;
  try {
    fh = await open(lock, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UpnextError(StatusCode.ABORTED, `another rotation holds ${lock}: wait for it (remove the file if no rotation runs)`);
    throw err;
  }
  try {
    await fh.writeFile(`${process.pid}\n`);
    await fh.close();
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

async function until(what: string, timeoutMs: number, cond: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new UpnextError(StatusCode.DEADLINE_EXCEEDED, `${what} within ${timeoutMs} ms of the reload: did nats-server read its config again? (its log says why not; run the rotation again once fixed)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The identities file re-read now, with `id`'s public keys set to `keys` (other entries as they are on disk). */
async function withKeys(dir: string, id: string, keys: readonly string[]): Promise<NatsIdentitiesFile> {
  const f = await readNatsIdentities(dir);
  return { ...f, identities: f.identities.map((i) => (i.id === id ? { ...i, publicKeys: keys } : i)) };
}

/**
 * Rotates identity `o.id` (see the module comment). NOT_FOUND for an unknown identity;
 * FAILED_PRECONDITION without a readable identities file or when the server does not accept the
 * current seed (nothing is changed then); ABORTED while another rotation runs; DEADLINE_EXCEEDED
 * when a reload does not show (run it again once the server's log says why).
 */
export async function rotateNatsIdentity(o: RotateOptions): Promise<RotateResult> {
  return withLock(o.dir, async () => {
    const log = o.log ?? (() => {});
    const timeoutMs = o.reloadTimeoutMs ?? 10_000;
    const f = await readNatsIdentities(o.dir);
    const current = f.identities.find((i) => i.id === o.id);
    if (current === undefined) {
      throw new UpnextError(StatusCode.NOT_FOUND, `no NATS identity "${o.id}" in ${o.dir} (there: ${f.identities.map((i) => i.id).join(', ')}; a node started by hand uses the shared key: --role node)`);
    }
    const seedPath = path.join(o.dir, current.seedFile);
    // The seed in use now: the server must accept it before anything changes, and refuse it at the end.
    const oldSeed = readNatsSeedFile(`the seed file of ${o.id}`, seedPath);
    if (!(await o.probe(oldSeed))) throw new UpnextError(StatusCode.FAILED_PRECONDITION, `no connection with the current seed of ${o.id} (${seedPath}): is the server up, and is it this cluster's? Nothing was changed`);
    const kp = nkeys.createUser();
    const publicKey = kp.getPublicKey();
    const seed = kp.getSeed();

    // 1. Both keys accepted.
    await writeNatsIdentities(o.dir, await withKeys(o.dir, o.id, [...current.publicKeys, publicKey]));
    await o.reload();
    await until(`the server did not accept the new key of ${o.id}`, timeoutMs, () => o.probe(seed));
    log(`${o.id}: new key ${publicKey} accepted beside ${current.publicKeys.join(', ')}`);

    // 2. The new seed in place: connections made from now on use it.
    const who = current.node !== undefined ? `node ${current.node} (role node)` : `role ${current.role}`;
    await writeSeedFile(seedPath, `upnext NATS credentials: ${who}, cluster ${f.cluster}. Rotated ${new Date().toISOString()}.`, kp);
    log(`${o.id}: ${seedPath} holds the new seed`);

    // 3. The old keys removed: the server drops their connections, which reconnect with the new seed.
    await writeNatsIdentities(o.dir, await withKeys(o.dir, o.id, [publicKey]));
    await o.reload();
    await until(`the server still accepts the old key of ${o.id}`, timeoutMs, async () => !(await o.probe(oldSeed)));
    await until(`the server refuses the new key of ${o.id}`, timeoutMs, () => o.probe(seed));
    log(`${o.id}: old key(s) ${current.publicKeys.join(', ')} removed; connections signed with them reconnect with the new seed`);
    return { id: o.id, removed: current.publicKeys, publicKey, seedFile: seedPath };
  });
}

/**
 * A probe for {@link RotateOptions.probe}: whether a connection to `url` signed with the seed opens
 * (`options`: TLS, for a server that requires it). A refused key and a server out of reach look alike
 * here (a refusal often shows as the socket closing), which is why the rotation pairs them.
 */
export function connectProbe(url: string, options: Partial<ConnectionOptions> = {}): (seed: Uint8Array) => Promise<boolean> {
  return async (seed) => {
    try {
      const nc = await connect({ servers: url, name: 'rotate-probe', reconnect: false, timeout: 5000, authenticator: nkeyAuthenticator(seed), ...options });
      await nc.close();
      return true;
    } catch {
      return false;
    }
  };
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
    // A pid file left by a server that stopped may name another process by now: signal only nats-server.
    const comm = await readFile(`/proc/${pid}/comm`, 'utf8').then((c) => c.trim(), () => undefined);
    if (comm !== undefined && comm !== 'nats-server') throw new UpnextError(StatusCode.FAILED_PRECONDITION, `pid ${pid} from ${pidFile} is ${comm}, not nats-server (a stale pid file?)`);
    try {
      process.kill(pid, 'SIGHUP');
    } catch (err) {
      throw new UpnextError(StatusCode.FAILED_PRECONDITION, `cannot signal nats-server pid ${pid} from ${pidFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
}
