/** A request trace with interned keys: request i asks for object `requests[i]`. */
export interface Trace {
  readonly name: string;
  /** One line on how the trace was made. */
  readonly description: string;
  /** Object id per request. */
  readonly requests: Int32Array;
  /** Size in bytes per object id. */
  readonly sizes: Float64Array;
  /** Key per object id (what the policies see). */
  readonly keys: readonly string[];
}

export interface TraceStats {
  requests: number;
  objects: number;
  /** Sum of the sizes of distinct objects: the basis of the cache-size fractions. */
  objectBytes: number;
  /** Sum of the sizes of all requests: the basis of the byte hit ratio. */
  requestedBytes: number;
  /** True when every object has size 1 (then hit ratio and byte hit ratio coincide). */
  unitSizes: boolean;
}

export function traceStats(trace: Trace): TraceStats {
  let objectBytes = 0;
  let unitSizes = true;
  for (const size of trace.sizes) {
    objectBytes += size;
    if (size !== 1) unitSizes = false;
  }
  let requestedBytes = 0;
  for (const id of trace.requests) requestedBytes += trace.sizes[id] as number;
  return { requests: trace.requests.length, objects: trace.sizes.length, objectBytes, requestedBytes, unitSizes };
}

/** Interns keys as they are first seen; used by generators and the trace-file reader. */
export class TraceBuilder {
  private readonly ids = new Map<string, number>();
  private readonly keyList: string[] = [];
  private readonly sizeList: number[] = [];
  private requestIds = new Int32Array(1024);
  private length = 0;

  /** Appends a request. An object's size is the largest seen for it (partial responses send less). */
  add(key: string, size: number): void {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.keyList.length;
      this.ids.set(key, id);
      this.keyList.push(key);
      this.sizeList.push(size);
    } else if (size > (this.sizeList[id] as number)) {
      this.sizeList[id] = size;
    }
    if (this.length === this.requestIds.length) {
      const grown = new Int32Array(this.requestIds.length * 2);
      grown.set(this.requestIds);
      this.requestIds = grown;
    }
    this.requestIds[this.length++] = id;
  }

  build(name: string, description: string): Trace {
    return {
      name,
      description,
      requests: this.requestIds.slice(0, this.length),
      sizes: Float64Array.from(this.sizeList, (size) => Math.max(1, size)),
      keys: this.keyList,
    };
  }
}
