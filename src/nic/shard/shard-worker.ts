// A QP shard in a worker thread: a SoftRoce over the device's shared memory, with its own socket
// in the VM address's steering group (BatchedUdpLink's qpnSteering), so the kernel hands it the
// packets of the QPs whose number modulo the group size is its index. It serves the device
// thread's synchronous calls (call-channel.ts over its control block) and pushes its completions,
// a CQ's batch per record, into a completion ring in shared memory (sharded-verbs.ts reads it).
import { parentPort, workerData } from 'node:worker_threads';
import { CallServer } from '../../backend/call-channel.js';
import { ControlBlock } from '../../backend/control-block.js';
import { PacketRing } from '../../backend/packet-ring.js';
import { type ArenaWindow, DeviceMemory } from '../../memory/device-memory.js';
import type { MemoryLayout } from '../../memory/layout.js';
import { DirtyLog, type DirtyLogPlacement } from '../../migration/dirty-log.js';
import { BatchedUdpLink } from '../../net/batched-udp-link.js';
import { SoftRoce } from '../soft/soft-roce.js';
import type { SoftRoceOptions } from '../soft/options.js';
import { callShard } from './shard-methods.js';
import { RECORD_OVERRUN, RECORD_WCS, WCS_PER_RECORD, WC_RECORD_BYTES, encodeWc } from './wc-codec.js';

/** The provider options that cross to a worker (functions and kernel instances do not). */
export type ShardProviderOptions = Pick<SoftRoceOptions, 'engine' | 'limits' | 'portMtu' | 'windowPsns' | 'budgetPackets' | 'retryBackoffCeilingMs'>;

export interface ShardWorkerData {
  index: number;
  group: number;
  ip: string;
  port: number;
  memory: WebAssembly.Memory;
  layout: MemoryLayout;
  arena: ArenaWindow;
  dirtyLog: DirtyLogPlacement | null;
  block: SharedArrayBuffer;
  completions: SharedArrayBuffer;
  provider: ShardProviderOptions;
}

export type ShardWorkerMessage = { ready: true } | { error: string } | { closed: true };

/** A record's bytes with its ring header, padded as the ring pads. */
const RECORD_ROOM = 16 + WCS_PER_RECORD * WC_RECORD_BYTES;

/** Moves a shard's completions into its ring; CQs whose completions do not fit yet wait for room. */
class CompletionForwarder {
  private readonly pending = new Set<number>();
  private scheduled = false;
  private readonly scratch = new Uint8Array(WCS_PER_RECORD * WC_RECORD_BYTES);
  private readonly view = new DataView(this.scratch.buffer);

  constructor(private readonly roce: SoftRoce, private readonly ring: PacketRing) {
    roce.onCompletion((cq) => {
      this.pending.add(cq);
      this.schedule(false);
    });
  }

  private schedule(later: boolean): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.flush();
    };
    if (later) setTimeout(run, 1);
    else queueMicrotask(run);
  }

  private flush(): void {
    let pushed = false;
    for (const cq of this.pending) {
      for (;;) {
        if (this.ring.capacity - this.ring.pending < 2 * RECORD_ROOM) {
          if (pushed) this.ring.ring();
          this.schedule(true);
          return;
        }
        let wcs;
        try {
          wcs = this.roce.pollCq(cq, WCS_PER_RECORD);
        } catch {
          // Overran (or destroyed): say so once; the device's CQ takes the error state.
          this.ring.push(new Uint8Array(0), cq, RECORD_OVERRUN);
          pushed = true;
          break;
        }
        if (wcs.length === 0) break;
        for (let i = 0; i < wcs.length; i++) encodeWc(this.view, i * WC_RECORD_BYTES, wcs[i]);
        this.ring.push(this.scratch.subarray(0, wcs.length * WC_RECORD_BYTES), cq, RECORD_WCS);
        pushed = true;
        if (wcs.length < WCS_PER_RECORD) break;
      }
      this.pending.delete(cq);
    }
    if (pushed) this.ring.ring();
  }
}

async function main(): Promise<void> {
  const data = workerData as ShardWorkerData;
  const port = parentPort!;
  const dm = DeviceMemory.attach(data.memory, data.layout, data.arena);
  if (data.dirtyLog !== null) dm.dirtyLog = DirtyLog.attach(data.memory, data.dirtyLog);
  let link: BatchedUdpLink;
  try {
    link = await BatchedUdpLink.open({ ip: data.ip, port: data.port, qpnSteering: data.group });
  } catch (err) {
    port.postMessage({ error: `shard ${data.index}: ${(err as Error).message}` } satisfies ShardWorkerMessage);
    return;
  }
  const roce = new SoftRoce(dm, link, data.provider);
  new CompletionForwarder(roce, new PacketRing(data.completions));
  let closing = false;
  const server = new CallServer(ControlBlock.attach(data.block), (call) => {
    if (call.method === 'close') {
      closing = true;
      return null;
    }
    return callShard(roce, call.method, call.args);
  }, () => {
    if (closing) server.stop();
  });
  port.postMessage({ ready: true } satisfies ShardWorkerMessage);
  await server.serve();
  // ACKs owed are coalesced into a later turn of the event loop (soft/qp.ts): let them leave.
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  roce.close();
  await link.close();
  port.postMessage({ closed: true } satisfies ShardWorkerMessage);
  port.close();
}

void main();
