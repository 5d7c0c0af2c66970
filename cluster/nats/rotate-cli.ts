/**
 * Rotates one NATS identity of a local cluster started with `nats.auth` on, live (cluster/nats/rotate.ts):
 *
 *   node dist/cluster/nats/rotate-cli.js --nats nats://127.0.0.1:<port> [--run-dir run/local]
 *        (--role admin|node|reader | --node <name>)
 *
 * Reads `<run dir>/config.json` (cluster name, TLS), rewrites `<run dir>/nats-auth/` (the seed,
 * identities.json, nats-server.conf) and reloads the server with a SIGHUP to the pid in
 * `<run dir>/nats-server.pid`. The processes holding that identity keep running: the server drops
 * their connections when the old key goes, and they reconnect with the new seed.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import { resolveConfig } from '../config.js';
import type { UpnextConfigInput } from '../config.js';
import { natsTlsOptions } from '../tls.js';
import { NATS_ROLES } from './auth.js';
import { reloadBySignal, rotateNatsIdentity } from './rotate.js';
import { StatusCode, toStatus } from '../../core/status.js';
import { parseFlags } from '../../shardmap/cli.js';

const USAGE = 'usage: rotate-cli --nats <url> [--run-dir run/local] (--role admin|node|reader | --node <name>)';

async function main(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv);
  const url = flags.get('nats');
  const role = flags.get('role');
  const node = flags.get('node');
  if (url === undefined || (role === undefined) === (node === undefined)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (role !== undefined && !(NATS_ROLES as readonly string[]).includes(role)) throw new TypeError(`--role must be one of ${NATS_ROLES.join(', ')}, got "${role}"`);
  const runDir = path.resolve(flags.get('run-dir') ?? 'run/local');
  const config = resolveConfig(JSON.parse(await readFile(path.join(runDir, 'config.json'), 'utf8')) as UpnextConfigInput);
  const tls = natsTlsOptions(config.tls);
  const probe = async (seed: Uint8Array): Promise<boolean> => {
    try {
      const nc = await connect({ servers: url, name: 'rotate-probe', reconnect: false, timeout: 3000, authenticator: nkeyAuthenticator(seed), ...tls });
      await nc.close();
      return true;
    } catch {
      return false;
    }
  };
  const r = await rotateNatsIdentity({
    dir: path.join(runDir, 'nats-auth'),
    id: role ?? `node-${node}`,
    reload: reloadBySignal(path.join(runDir, 'nats-server.pid')),
    probe,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`${r.id} rotated: the server accepts ${r.publicKey} only; ${r.seedFile} holds its seed\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const st = toStatus(err);
    process.stderr.write(`rotate-cli: ${err instanceof TypeError ? err.message : `${StatusCode[st.code] ?? st.code}: ${st.message}`}\n`);
    process.exit(1);
  },
);
