/**
 * Certificate rotation without a restart: the PEM files of a `tls` section, watched. Every
 * {@link TLS_RELOAD_INTERVAL_MS} the three files are stat-ed; when one changed they are read again
 * and checked (the certificate and the CA parse, the key belongs to the certificate) and, if good,
 * handed to every listener: grpc-js servers and channels (through its certificate-provider
 * credentials: new handshakes use the new certificate, open connections carry on) and the node's
 * HTTPS /metrics server (`setSecureContext`). A set of files that does not check out — e.g. the
 * certificate replaced and its key not yet — is not applied: the last good one stays in use and
 * the next change is tried again, so the order in which an operator (or cert-manager) replaces the
 * files does not matter.
 *
 * One watcher per set of files per process (servers and clients of a node share it); its timer is
 * unref'd and runs only while something listens.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';

/** How often the files are checked for a change, ms. */
export const TLS_RELOAD_INTERVAL_MS = 10_000;

/** The PEM bytes of a checked set of files. */
export interface TlsMaterial {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** The files a watcher reads. */
export interface TlsWatchFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

type CaListener = (update: grpc.experimental.CaCertificateUpdate | null) => void;
type IdentityListener = (update: grpc.experimental.IdentityCertificateUpdate | null) => void;

/**
 * Reads and checks the three files; throws an Error saying what is wrong. Besides parsing, the set
 * must make a TLS context (OpenSSL refuses, e.g., keys below its security level even when they
 * match), so a set that passes here is one every TLS server and channel accepts.
 */
export function readTlsMaterial(files: TlsWatchFiles): TlsMaterial {
  const cert = readFileSync(files.certFile);
  const key = readFileSync(files.keyFile);
  const ca = readFileSync(files.caFile);
  const x509 = new X509Certificate(cert);
  new X509Certificate(ca);
  if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error(`${files.keyFile} is not the private key of ${files.certFile}`);
  createSecureContext({ ca, cert, key });
  return { ca, cert, key };
}

/** A grpc-js certificate provider (CA and identity) over watched files; also feeds other listeners. */
export class TlsFileWatcher implements grpc.experimental.CertificateProvider {
  readonly files: TlsWatchFiles;
  #intervalMs: number;
  #material: TlsMaterial;
  #stamp: string;
  #timer: NodeJS.Timeout | undefined;
  readonly #ca = new Set<CaListener>();
  readonly #identity = new Set<IdentityListener>();
  readonly #other = new Set<(m: TlsMaterial) => void>();
  #reloads = 0;
  #refused = 0;
  /** The stamp of the last set refused, so a refusal is said once per change. */
  #refusedStamp: string | undefined;

  /** Reads the files now (throws when they do not check out: the caller fails at start). */
  constructor(files: TlsWatchFiles, intervalMs = TLS_RELOAD_INTERVAL_MS) {
    this.files = files;
    this.#intervalMs = intervalMs;
    this.#stamp = this.#stampNow();
    this.#material = readTlsMaterial(files);
  }

  /** The material in use now (checked against the files first when nothing keeps the timer running). */
  material(): TlsMaterial {
    if (this.#timer === undefined) this.check();
    return this.#material;
  }

  /** Polls at most every `ms` from now on (the smallest interval any user asked for wins). */
  pollAtMost(ms: number): void {
    if (!(ms < this.#intervalMs)) return;
    this.#intervalMs = ms;
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.#sync();
    }
  }

  /** Sets of files applied since start, and sets refused (left the last good one in use). */
  counts(): { readonly reloads: number; readonly refused: number } {
    return { reloads: this.#reloads, refused: this.#refused };
  }

  /** Calls `fn` with each new set of files applied; returns the unsubscribe. */
  onChange(fn: (m: TlsMaterial) => void): () => void {
    if (this.#timer === undefined) this.check();
    this.#other.add(fn);
    this.#sync();
    return () => {
      this.#other.delete(fn);
      this.#sync();
    };
  }

  /** Checks the files now (the timer does this every interval). Returns whether a new set was applied. */
  check(): boolean {
    let stamp: string;
    try {
      stamp = this.#stampNow();
    } catch {
      return false; // a file missing mid-replace: look again next time
    }
    if (stamp === this.#stamp) return false;
    let m: TlsMaterial;
    try {
      m = readTlsMaterial(this.files);
    } catch (err) {
      // Not applied; the stamp is not taken, so the next tick tries again (the rest of a rotation
      // may land by then). Said once per change.
      if (this.#refusedStamp !== stamp) {
        this.#refusedStamp = stamp;
        this.#refused++;
        console.error(`tls: the changed certificate files are not applied, the previous ones stay in use: ${(err as Error).message}`);
      }
      return false;
    }
    this.#stamp = stamp;
    this.#material = m;
    this.#reloads++;
    // Every listener gets the set even if one throws (a throw inside the timer would end the process).
    const each = <L>(listeners: Iterable<L>, call: (l: L) => void) => {
      for (const l of listeners) {
        try {
          call(l);
        } catch (err) {
          console.error(`tls: applying the new certificate files failed in one listener: ${(err as Error).message}`);
        }
      }
    };
    each(this.#ca, (l) => l({ caCertificate: m.ca }));
    each(this.#identity, (l) => l({ certificate: m.cert, privateKey: m.key }));
    each(this.#other, (l) => l(m));
    return true;
  }

  addCaCertificateListener(listener: CaListener): void {
    if (this.#timer === undefined) this.check(); // idle until now: the files may have changed meanwhile
    this.#ca.add(listener);
    process.nextTick(listener, { caCertificate: this.#material.ca });
    this.#sync();
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#ca.delete(listener);
    this.#sync();
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    if (this.#timer === undefined) this.check();
    this.#identity.add(listener);
    process.nextTick(listener, { certificate: this.#material.cert, privateKey: this.#material.key });
    this.#sync();
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identity.delete(listener);
    this.#sync();
  }

  /** mtime, size and inode of the three files: a rename or a rewrite changes it. */
  #stampNow(): string {
    return [this.files.certFile, this.files.keyFile, this.files.caFile]
      .map((f) => {
        const s = statSync(f);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      })
      .join('|');
  }

  /** Runs the timer while anything listens. */
  #sync(): void {
    const listening = this.#ca.size + this.#identity.size + this.#other.size > 0;
    if (listening && this.#timer === undefined) {
      this.#timer = setInterval(() => this.check(), this.#intervalMs);
      this.#timer.unref();
    } else if (!listening && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

const watchers = new Map<string, TlsFileWatcher>();

/**
 * The process's watcher of `files` (made on first use; users of the same files share it, polled at
 * the smallest interval any of them asked for).
 */
export function tlsFileWatcher(files: TlsWatchFiles, intervalMs = TLS_RELOAD_INTERVAL_MS): TlsFileWatcher {
  const key = JSON.stringify([files.certFile, files.keyFile, files.caFile]);
  let w = watchers.get(key);
  if (w === undefined) {
    w = new TlsFileWatcher(files, intervalMs);
    watchers.set(key, w);
  } else {
    w.pollAtMost(intervalMs);
  }
  return w;
}
