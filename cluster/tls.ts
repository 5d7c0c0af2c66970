/**
 * The config's `tls` section (resolved as part of cluster/config.ts) and what it turns into for the
 * transports: gRPC server and channel credentials (mutual TLS: servers require a client certificate
 * signed by the CA) and the NATS client's `tls` connect option. An unset section gives today's
 * plaintext: insecure credentials and no `tls` option. The actors only see grpc-js credential
 * objects; reading PEM files stays here, at the edge. Light on imports (no actor code), so the load
 * generator and the shardmap CLI use it too.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkServerIdentity, createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { TLS_RELOAD_INTERVAL_MS, tlsFileWatcher } from './tls-watch.js';

/**
 * TLS of the node's gRPC servers and clients (mutual: every server asks for a client certificate
 * signed by `caFile`) and of its NATS connection. Either unset (every field
 * absent: plaintext, the default) or `certFile`, `keyFile` and `caFile` all set. One section for
 * gRPC and NATS: a node has one identity, and one CA signs the services and the NATS server.
 */
export interface TlsSection {
  /** PEM certificate (chain) this process presents, as a server and as a client. Default unset. */
  readonly certFile?: string;
  /** PEM private key of `certFile`. Default unset. */
  readonly keyFile?: string;
  /** PEM CA bundle that peers' certificates (servers' and clients') must chain to. Default unset. */
  readonly caFile?: string;
  /**
   * Name checked against a gRPC server's certificate instead of the host dialled (the shard map
   * holds host:port, often an IP): for certificates that carry only a DNS name. Default unset (the
   * dialled host must be in the certificate's SANs).
   */
  readonly serverName?: string;
}

/** A TLS section that is set: the three PEM files are present. */
export interface TlsFiles extends TlsSection {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** Whether `tls` is set (mTLS on), narrowing it to {@link TlsFiles}. */
export function tlsEnabled(tls: TlsSection | undefined): tls is TlsFiles {
  return tls?.certFile !== undefined;
}

const TLS_KEYS = ['certFile', 'keyFile', 'caFile', 'serverName'] as const;

/** Reads a PEM file for validation; a TypeError naming `name` when it cannot be read or holds no `label` block. */
function readPem(name: string, file: string, label: RegExp): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TypeError(`${name}: cannot read ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!label.test(text)) throw new TypeError(`${name}: ${JSON.stringify(file)} is not a PEM file (no ${label.source} block)`);
  return text;
}

/** The command-line flags that set each TLS field (shardmap, loadtest, online-eval). */
export const TLS_FLAGS = { caFile: '--tls-ca', certFile: '--tls-cert', keyFile: '--tls-key', serverName: '--tls-server-name' } as const;

/**
 * TLS settings from `--tls-*` flag values (`get('--tls-ca')`, …; undefined = not given), checked like
 * the config section with errors naming the flag. {} = plaintext.
 */
export function tlsSectionFromFlags(get: (flag: string) => string | undefined): TlsSection {
  const input: Record<string, string> = {};
  for (const [field, flag] of Object.entries(TLS_FLAGS)) {
    const v = get(flag);
    if (v !== undefined) input[field] = v;
  }
  return resolveTlsSection(input, (f) => TLS_FLAGS[f]);
}

/**
 * Validates a TLS section: unset, or `certFile`, `keyFile` and `caFile` all naming readable PEM
 * files (certificates that parse, a private key that parses and belongs to `certFile`). Throws a
 * TypeError naming the knob; `nameOf` turns a field into that name (default `config tls.<field>`;
 * the CLIs pass their flag names). Reads the files once, at load, so a node with a bad path or key
 * fails at start rather than at its first TLS handshake.
 */
export function resolveTlsSection(input: Record<string, unknown>, nameOf: (field: keyof TlsSection) => string = (f) => `config tls.${f}`): TlsSection {
  for (const k of Object.keys(input)) {
    if (!(TLS_KEYS as readonly string[]).includes(k)) throw new TypeError(`config tls.${k} is not a known option`);
  }
  const set = TLS_KEYS.filter((k) => input[k] !== undefined);
  if (set.length === 0) return Object.freeze({});
  for (const k of ['certFile', 'keyFile', 'caFile'] as const) {
    if (input[k] === undefined) throw new TypeError(`${nameOf(k)} must be set when ${set.map((f) => nameOf(f)).join(', ')} ${set.length === 1 ? 'is' : 'are'} (mutual TLS needs certFile, keyFile and caFile)`);
  }
  const text = (k: keyof TlsSection): string => {
    const v = input[k];
    if (typeof v !== 'string' || v.length === 0) throw new TypeError(`${nameOf(k)} must be a non-empty string, got ${JSON.stringify(v)}`);
    return v;
  };
  const certFile = text('certFile');
  const keyFile = text('keyFile');
  const caFile = text('caFile');
  const serverName = input.serverName === undefined ? undefined : text('serverName');
  const certificate = /-----BEGIN CERTIFICATE-----/;
  const certPem = readPem(nameOf('certFile'), certFile, certificate);
  const keyPem = readPem(nameOf('keyFile'), keyFile, /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  const caPem = readPem(nameOf('caFile'), caFile, certificate);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new TypeError(`${nameOf('certFile')}: ${JSON.stringify(certFile)} does not parse as a certificate (${(err as Error).message})`);
  }
  try {
    new X509Certificate(caPem);
  } catch (err) {
    throw new TypeError(`${nameOf('caFile')}: ${JSON.stringify(caFile)} does not parse as a certificate (${(err as Error).message})`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new TypeError(`${nameOf('keyFile')}: ${JSON.stringify(keyFile)} does not parse as a private key (${(err as Error).message})`);
  }
  if (!cert.checkPrivateKey(key)) throw new TypeError(`${nameOf('keyFile')}: ${JSON.stringify(keyFile)} is not the private key of ${nameOf('certFile')} ${JSON.stringify(certFile)}`);
  try {
    // What every TLS server and channel will do with them (OpenSSL's own limits, e.g. key sizes).
    createSecureContext({ ca: caPem, cert: certPem, key: keyPem });
  } catch (err) {
    throw new TypeError(`${nameOf('certFile')}: ${JSON.stringify(certFile)} with its key and CA is refused by TLS (${(err as Error).message})`);
  }
  return Object.freeze({ certFile, keyFile, caFile, ...(serverName !== undefined ? { serverName } : {}) });
}

/**
 * Credentials for a gRPC server (public Recommend, KServe): with `tls` set, TLS with this process's
 * certificate that refuses clients without a certificate signed by `tls.caFile`; unset, plaintext.
 * The files are watched (cluster/tls-watch.ts): a replaced certificate, key or CA is used by new
 * handshakes within `reloadIntervalMs` (default {@link TLS_RELOAD_INTERVAL_MS}), no restart.
 */
export function grpcServerCredentials(tls: TlsSection, reloadIntervalMs?: number): grpc.ServerCredentials {
  if (!tlsEnabled(tls)) return grpc.ServerCredentials.createInsecure();
  const w = tlsFileWatcher(tls, reloadIntervalMs);
  // One provider serves both the CA and this process's identity.
  return grpc.experimental.createCertificateProviderServerCredentials(w, w, true);
}

/**
 * Credentials for a gRPC client (ranker client, Recommend clients): with `tls` set, TLS that trusts
 * only `tls.caFile` and presents this process's certificate; the server's certificate must name
 * the dialled host (an IP or DNS SAN), or `tls.serverName` when set. Unset, plaintext.
 */
export function grpcChannelCredentials(tls: TlsSection, reloadIntervalMs?: number): grpc.ChannelCredentials {
  if (!tlsEnabled(tls)) return grpc.credentials.createInsecure();
  const serverName = tls.serverName;
  // The name override lives in the credentials (not a channel option) so every client built from
  // them checks the same name, whatever channel options it sets.
  const verify: grpc.VerifyOptions =
    serverName === undefined ? {} : { checkServerIdentity: (_host, cert) => checkServerIdentity(serverName, cert) };
  // Watched like the server's: new connections (and reconnections) present the current files.
  const w = tlsFileWatcher(tls, reloadIntervalMs);
  return grpc.experimental.createCertificateProviderChannelCredentials(w, w, verify);
}

/**
 * Options of the node's HTTPS server for /metrics and /healthz when `tls` is set (undefined = serve
 * plain HTTP): this process's certificate, and client certificates requested and checked against
 * `tls.caFile` but not demanded at the handshake — the handler decides per path (`/metrics` needs
 * one, `/healthz` does not: an orchestrator's probe rarely carries a client certificate, and
 * liveness says nothing an attacker could use).
 */
export function httpsServerOptions(tls: TlsSection): { ca: Buffer; cert: Buffer; key: Buffer; requestCert: true; rejectUnauthorized: false } | undefined {
  if (!tlsEnabled(tls)) return undefined;
  return { ...tlsFileWatcher(tls).material(), requestCert: true, rejectUnauthorized: false };
}

/**
 * Keeps an HTTPS server (the node's /metrics) on the current files of `tls`: `setSecureContext`
 * whenever the watcher applies new ones. Returns the unsubscribe; a no-op without `tls`.
 */
export function watchHttpsServer(server: { setSecureContext(options: { ca: Buffer; cert: Buffer; key: Buffer }): void }, tls: TlsSection): () => void {
  if (!tlsEnabled(tls)) return () => {};
  return tlsFileWatcher(tls).onChange((m) => server.setSecureContext({ ca: m.ca, cert: m.cert, key: m.key }));
}

/** The NATS client's TLS files (nats.js reads them when it connects). */
export interface NatsTlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Spread into nats.js `connect()` options: `{ tls: { caFile, certFile, keyFile } }` when `tls` is
 * set (the server must then speak TLS and may verify the client certificate), `{}` otherwise.
 */
export function natsTlsOptions(tls: TlsSection | undefined): { tls?: NatsTlsFiles } {
  if (!tlsEnabled(tls)) return {};
  return { tls: { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile } };
}
