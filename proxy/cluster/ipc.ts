/**
 * Request/response messages over node:cluster's IPC channel, in both directions (worker → primary and
 * primary → worker). Each request carries an id; the answer comes back with the same id.
 */
import type { Worker } from 'node:cluster';

const TAG = 'edgecache';

interface RequestMessage {
  tag: typeof TAG;
  kind: 'request';
  id: number;
  op: string;
  payload: unknown;
}

interface ResponseMessage {
  tag: typeof TAG;
  kind: 'response';
  id: number;
  result?: unknown;
  error?: string;
}

type Message = RequestMessage | ResponseMessage;

/** Something that can send and receive IPC messages: `process` in a worker, a `Worker` in the primary. */
export interface Channel {
  send(message: unknown): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export type Handler = (op: string, payload: unknown) => Promise<unknown> | unknown;

function isMessage(value: unknown): value is Message {
  return typeof value === 'object' && value !== null && (value as { tag?: unknown }).tag === TAG;
}

export class RpcPeer {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private readonly listener = (message: unknown): void => this.receive(message);

  constructor(
    private readonly channel: Channel,
    private readonly handler: Handler,
  ) {
    channel.on('message', this.listener);
  }

  /** Sends a request; rejects after `timeoutMs` without an answer. */
  call<T>(op: string, payload: unknown, timeoutMs = 10_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`ipc ${op} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      try {
        this.channel.send({ tag: TAG, kind: 'request', id, op, payload } satisfies RequestMessage);
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err as Error);
      }
    });
  }

  /** Fails every call in flight (the other side went away). */
  close(reason: string): void {
    this.channel.off('message', this.listener);
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(new Error(reason));
      this.pending.delete(id);
    }
  }

  private receive(message: unknown): void {
    if (!isMessage(message)) return;
    if (message.kind === 'response') {
      const call = this.pending.get(message.id);
      if (call === undefined) return;
      this.pending.delete(message.id);
      clearTimeout(call.timer);
      if (message.error !== undefined) call.reject(new Error(message.error));
      else call.resolve(message.result);
      return;
    }
    const reply = (body: Omit<ResponseMessage, 'tag' | 'kind' | 'id'>): void => {
      try {
        this.channel.send({ tag: TAG, kind: 'response', id: message.id, ...body } satisfies ResponseMessage);
      } catch {
        // The other side is gone; nothing to answer.
      }
    };
    Promise.resolve()
      .then(() => this.handler(message.op, message.payload))
      .then(
        (result) => reply({ result }),
        (err: unknown) => reply({ error: (err as Error)?.message ?? String(err) }),
      );
  }
}

export function workerChannel(worker: Worker): Channel {
  return worker as unknown as Channel;
}
