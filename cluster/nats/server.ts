/**
 * Starts and stops a real `nats-server` (Debian package) with JetStream, for the local cluster and
 * for integration tests. One process per call; nothing global, so two clusters in one test run never
 * share a server by accident.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { UpnextError, StatusCode } from '../../core/status.js';

export interface NatsServerOptions {
  /** JetStream storage directory (created if missing). */
  readonly dataDir: string;
  /** Client port; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** Bind address. Default 127.0.0.1. */
  readonly host?: string;
  /** nats-server binary. Default `nats-server` on PATH, else /usr/sbin/nats-server. */
  readonly binary?: string;
  /** How long to wait for "Server is ready". Default 15000 ms. */
  readonly startTimeoutMs?: number;
  /**
   * Serve TLS only, with this certificate, and require client certificates signed by `caFile`
   * (nats-server `--tlsverify`; with `configFile`, from that file's `tls` block instead). Default unset: plaintext. Clients then connect with nats.js
   * `tls: { caFile, certFile, keyFile }` (cluster/tls.ts natsTlsOptions).
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
  /**
   * nats-server config file (`-c`), e.g. the `authorization` block of cluster/nats/auth.ts
   * (per-role NKey users and subject permissions). The flags above override what it sets for the
   * same settings. Default unset: no config file (no authentication).
   */
  readonly configFile?: string;
  /**
   * Called with every line the server writes (its log: start-up, errors, permission and
   * authorization violations). Default: lines are read and dropped.
   */
  readonly onLog?: (line: string) => void;
  /** nats-server writes its pid here (`-P`), for tools that signal it (a config reload: cluster/nats/rotate.ts). Default none. */
  readonly pidFile?: string;
}

export interface NatsServerHandle {
  /** e.g. nats://127.0.0.1:4222 */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
  stop(): Promise<void>;
}

/** Asks the OS for a free TCP port on `host`. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The `tls { … verify: true }` block of a nats-server config: TLS only, client certificates
 * signed by `caFile` required. In the file (not only as flags) a reload keeps it, and reads new
 * certificate files.
 */
export function renderNatsTlsBlock(tls: { readonly certFile: string; readonly keyFile: string; readonly caFile: string }): string {
  const q = (s: string) => JSON.stringify(s);
  return `tls {\n  cert_file: ${q(tls.certFile)}\n  key_file: ${q(tls.keyFile)}\n  ca_file: ${q(tls.caFile)}\n  verify: true\n}\n`;
}

export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port && opts.port > 0 ? opts.port : await freePort(host);
  await mkdir(opts.dataDir, { recursive: true });
  const binary = opts.binary ?? (await findBinary());
  // With a config file, TLS must be in the file (`tls { … verify: true }`: writeNatsCredentials
  // writes it): a reload (SIGHUP) reads the file alone and refuses one whose TLS differs from the
  // flags the server started with ("config reload not supported for TLSVerify").
  if (opts.tls !== undefined && opts.configFile !== undefined && !/^tls\s*\{/m.test(await readFile(opts.configFile, 'utf8'))) {
    throw new TypeError(`nats-server: TLS with config file ${opts.configFile} needs a tls { … } block in that file (a reload reads only the file)`);
  }
  const tlsArgs = opts.tls === undefined || opts.configFile !== undefined ? [] : ['--tlsverify', '--tlscert', opts.tls.certFile, '--tlskey', opts.tls.keyFile, '--tlscacert', opts.tls.caFile];
  const configArgs = opts.configFile === undefined ? [] : ['-c', opts.configFile];
  const pidArgs = opts.pidFile === undefined ? [] : ['-P', opts.pidFile];
  const child: ChildProcess = spawn(binary, [...configArgs, '-a', host, '-p', String(port), '-js', '-sd', opts.dataDir, ...pidArgs, ...tlsArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const timeoutMs = opts.startTimeoutMs ?? 15_000;
  const onLog = opts.onLog;
  if (onLog !== undefined) {
    // Lines, not chunks: a chunk may end mid-line.
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', onLog);
    }
  }
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new UpnextError(StatusCode.UNAVAILABLE, `nats-server did not become ready in ${timeoutMs} ms: ${log.slice(-500)}`));
    }, timeoutMs);
    const onData = (buf: Buffer) => {
      log += buf.toString();
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        child.stdout?.off('data', onData);
        // keep draining so the pipe never fills and blocks the server
        child.stderr?.resume();
        child.stdout?.resume();
        resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new UpnextError(StatusCode.UNAVAILABLE, `cannot start ${binary}: ${err.message} (install the Debian package nats-server)`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new UpnextError(StatusCode.UNAVAILABLE, `nats-server exited with ${code}: ${log.slice(-500)}`));
    });
  });
  const pid = child.pid ?? -1;
  let exited: Promise<void> | undefined;
  return {
    url: `nats://${host}:${port}`,
    port,
    pid,
    stop: () => {
      exited ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(kill);
          // nats-server leaves its pid file: a later reload must not signal whoever gets the pid next.
          if (opts.pidFile !== undefined) void rm(opts.pidFile, { force: true }).finally(resolve);
          else resolve();
        });
        child.kill('SIGTERM');
      });
      return exited;
    },
  };
}

async function findBinary(): Promise<string> {
  const { access } = await import('node:fs/promises');
  for (const c of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    try {
      await access(c);
      return c;
    } catch {
      /* try next */
    }
  }
  return 'nats-server';
}
