/**
 * TLS on the proxy port (--tls-cert, --tls-key): the certificate and key read from their PEM files and checked
 * at start-up (a missing, unreadable or invalid file is a start-up failure naming the setting: exit code 1), the
 * server options (TLS 1.2 or newer, ALPN h2 then http/1.1, shared session-ticket keys), and the reload on SIGHUP:
 * both files read and checked again and, only when they are usable, set on the listening server with
 * `setSecureContext` (connections already open keep the context they began with; new ones get the new one). A
 * bad file on reload keeps the previous certificate and logs one line.
 *
 * Session tickets: a ticket is encrypted with the server's ticket keys (48 bytes). Under --workers every worker
 * accepts its own connections, so the cluster primary makes one set of keys and gives it to every worker
 * (cluster/primary.ts): a client resuming with a ticket from one worker is resumed by any other.
 */
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type Server as TlsServer, type TlsOptions } from 'node:tls';
import { startupError } from '../startup.js';

/** ALPN, in the server's order of preference (RFC 7301): HTTP/2 first (RFC 9113 §3.2), then HTTP/1.1. */
const ALPN_PROTOCOLS = ['h2', 'http/1.1'];

/** The size of a TLS session-ticket key set, as node:tls takes it (`ticketKeys`). */
const TICKET_KEYS_SIZE = 48;

/** The environment variable a cluster worker finds the shared ticket keys in (base64; set by the primary). */
export const TICKET_KEYS_ENV = 'EDGECACHE_TLS_TICKET_KEYS';

/** A new random set of session-ticket keys. */
export function newTicketKeys(): Buffer {
  return randomBytes(TICKET_KEYS_SIZE);
}

/** The ticket keys a worker was given by the primary, if any (and well formed). */
export function inheritedTicketKeys(env: NodeJS.ProcessEnv): Buffer | undefined {
  const text = env[TICKET_KEYS_ENV];
  if (text === undefined) return undefined;
  const keys = Buffer.from(text, 'base64');
  return keys.length === TICKET_KEYS_SIZE ? keys : undefined;
}

interface Pem {
  cert: Buffer;
  key: Buffer;
}

/** A file's bytes, or an error naming the setting. */
function readPem(path: string, setting: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${setting} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Reads both files and checks that they are a PEM certificate and the private key that goes with it. */
function readCredentials(certPath: string, keyPath: string): Pem {
  const cert = readPem(certPath, '--tls-cert');
  const key = readPem(keyPath, '--tls-key');
  try {
    new X509Certificate(cert);
  } catch (err) {
    throw new Error(`invalid --tls-cert ${certPath}: not a PEM certificate (${(err as Error).message})`);
  }
  try {
    createPrivateKey(key);
  } catch (err) {
    throw new Error(`invalid --tls-key ${keyPath}: not a PEM private key (${(err as Error).message})`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`--tls-key ${keyPath} does not go with --tls-cert ${certPath} (${(err as Error).message})`);
  }
  return { cert, key };
}

export class TlsCredentials {
  private pem: Pem;

  private constructor(
    private readonly certPath: string,
    private readonly keyPath: string,
    private readonly ticketKeys: Buffer,
    pem: Pem,
  ) {
    this.pem = pem;
  }

  /** Reads the files at start-up; a problem is a StartupError (one line naming the setting, exit code 1). */
  static load(certPath: string, keyPath: string, ticketKeys: Buffer = newTicketKeys()): TlsCredentials {
    try {
      return new TlsCredentials(certPath, keyPath, ticketKeys, readCredentials(certPath, keyPath));
    } catch (err) {
      throw startupError('cannot start TLS', err);
    }
  }

  /** The options of the proxy port's TLS server. */
  serverOptions(): TlsOptions {
    return { ...this.pem, ticketKeys: this.ticketKeys, minVersion: 'TLSv1.2', ALPNProtocols: ALPN_PROTOCOLS };
  }

  /**
   * Reads both files again and, when they are usable, makes them the server's context for new connections.
   * Returns the problem (one line) when they are not; the server then keeps the previous certificate.
   */
  reload(server: TlsServer): string | undefined {
    let pem: Pem;
    try {
      pem = readCredentials(this.certPath, this.keyPath);
    } catch (err) {
      return (err as Error).message.split('\n')[0];
    }
    this.pem = pem;
    server.setSecureContext(this.serverOptions());
    return undefined;
  }
}
