// A QP shard in a worker thread: a SoftRoce over the device's shared memory, with its own socket
// in the VM address's steering group (BatchedUdpLink's qpnSteering), watched from its own event
// loop, so the kernel hands it the packets of the QPs it owns. It serves the device
// thread's synchronous calls (call-channel.ts over its control block), runs the work requests
// posted to it through its post ring (all those queued before any call, so a call never overtakes
// a post), and pushes its completions, a CQ's batch per record, into a completion ring in shared
// memory (sharded-verbs.ts reads it). A work request it refuses goes back through the same ring.
import { parentPort, workerData } from 'node:worker_threads';
import { CallServer } from '../../backend/call-channel.js';
import { ControlBlock } from '../../backend/control-block.js';
import { PacketRing } from '../../backend/packet-ring.js';
import { type ArenaWindow, DeviceMemory } from '../../memory/device-memory.js';
import type { MemoryLayout } from '../../memory/layout.js';
import { DirtyLog, type DirtyLogPlacement } from '../../migration/dirty-log.js';
import { BatchedUdpLink } from '../../net/batched-udp-link.js';
import { SoftRoce } from '../soft/soft-roce.js';
import type { SendWr } from '../verbs.js';
import type { SoftRoceOptions } from '../soft/options.js';
import { type ShardContext, callShard } from './shard-methods.js';
import { QpOwners } from './qp-owners.js';
import { nativeStatus } from '../../native/addon.js';
import { POST_SEND, decodeRecvWrs, decodeSendWrs } from './post-codec.js';
import { RECORD_OVERRUN, RECORD_REFUSED, RECORD_WCS, REFUSED_BYTES, type RefusedWr, WCS_PER_RECORD, WC_RECORD_BYTES, encodeRefused, encodeWc } from './wc-codec.js';
import { WcOpcode, wcOpcodeOf } from '../types.js';

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
  posts: SharedArrayBuffer;
  provider: ShardProviderOptions;
  /** The socket of a shard whose thread died, to take over (a replacement); else bind one. */
  adoptFd?: number;
  /** The device's QP ownership words (qp-owners.ts). */
  owners: SharedArrayBuffer;
}

/** The worker says: its socket is ready (bound or adopted), it could not start, or it closed. */
export type ShardWorkerMessage = { ready: true; fd: number } | { error: string } | { closed: true };
/** The device thread answers `ready` with what every shard holds (SoftRoce.saveObjects), or null for a new device's shard. */
export interface ShardStart {
  objects: Uint8Array | null;
}

/** The largest record a shard pushes: a CQ's batch of completions. */
const RECORD_BYTES = WCS_PER_RECORD * WC_RECORD_BYTES;

/** Moves a shard's completions into its ring; CQs whose completions do not fit yet wait for room. */
class CompletionForwarder {
  private readonly pending = new Set<number>();
  /** Work requests refused at posting, by QP. */
  private readonly refusedWrs = new Map<number, RefusedWr[]>();
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

  /** Report work requests of `qpn` the shard refused, as completions (sharded-verbs.ts makes them). */
  refused(qpn: number, wrs: RefusedWr[]): void {
    const list = this.refusedWrs.get(qpn) ?? [];
    list.push(...wrs);
    this.refusedWrs.set(qpn, list);
    this.schedule(false);
  }

  /** Push what it can now, from `cqs` too; how many CQs and refusals it still holds (the ring was full). */
  flushNow(cqs: readonly number[]): number {
    for (const cq of cqs) this.pending.add(cq);
    this.flush();
    return this.pending.size + this.refusedWrs.size;
  }

  /** Whether the ring has no room for another full record: then what was pushed is rung and the rest waits a millisecond. */
  private full(pushed: boolean): boolean {
    if (this.ring.fits(RECORD_BYTES)) return false;
    if (pushed) this.ring.ring();
    this.schedule(true);
    return true;
  }

  private flush(): void {
    let pushed = false;
    for (const [qpn, list] of this.refusedWrs) {
      while (list.length > 0) {
        if (this.full(pushed)) return;
        const batch = list.splice(0, WCS_PER_RECORD);
        batch.forEach((r, i) => encodeRefused(this.view, i * REFUSED_BYTES, r));
        this.ring.push(this.scratch.subarray(0, batch.length * REFUSED_BYTES), qpn, RECORD_REFUSED);
        pushed = true;
      }
      this.refusedWrs.delete(qpn);
    }
    for (const cq of this.pending) {
      for (;;) {
        if (this.full(pushed)) return;
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

/** Post one record's work requests, one at a time; those refused are reported, not thrown. */
function runPost(roce: SoftRoce, forwarder: CompletionForwarder, qpn: number, kind: number, bytes: Uint8Array): void {
  const send = kind === POST_SEND;
  const wrs = send ? decodeSendWrs(bytes) : decodeRecvWrs(bytes);
  const refused: RefusedWr[] = [];
  for (const wr of wrs) {
    try {
      if (send) roce.postSend(qpn, [wr as SendWr]);
      else roce.postRecv(qpn, [wr]);
    } catch {
      refused.push({ wrId: wr.wrId, opcode: send ? wcOpcodeOf((wr as SendWr).opcode) : WcOpcode.Recv, recv: !send });
    }
  }
  if (refused.length > 0) forwarder.refused(qpn, refused);
}

async function main(): Promise<void> {
  const data = workerData as ShardWorkerData;
  const port = parentPort!;
  const dm = DeviceMemory.attach(data.memory, data.layout, data.arena);
  if (data.dirtyLog !== null) dm.dirtyLog = DirtyLog.attach(data.memory, data.dirtyLog);
  let link: BatchedUdpLink;
  try {
    link = await BatchedUdpLink.open({ ip: data.ip, port: data.port, qpnSteering: data.group, adoptFd: data.adoptFd, readiness: 'loop' });
  } catch (err) {
    port.postMessage({ error: `shard ${data.index}: ${(err as Error).message}` } satisfies ShardWorkerMessage);
    return;
  }
  const start = new Promise<ShardStart>((resolve) => port.once('message', resolve));
  port.postMessage({ ready: true, fd: link.socketFd } satisfies ShardWorkerMessage);
  const { objects } = await start;
  const roce = new SoftRoce(dm, link, data.provider);
  if (objects !== null) roce.restoreState(objects);
  const forwarder = new CompletionForwarder(roce, new PacketRing(data.completions));
  const posts = new PacketRing(data.posts);
  const runPosts = (): void => {
    posts.pop((bytes, qpn, kind) => {
      try {
        runPost(roce, forwarder, qpn, kind, bytes);
      } catch (err) {
        // Only a record this code did not write gets here: a bug, counted where bugs are.
        roce.counters.internalErrors++;
        roce.counters.lastInternalError = err;
      }
    });
  };
  let closing = false;
  const native = nativeStatus();
  const ctx: ShardContext = {
    roce, index: data.index, owners: new QpOwners(data.owners),
    flushCompletions: (cqs) => forwarder.flushNow(cqs),
    steer: (overrides) => {
      if (!native.available) throw new Error(native.reason);
      native.addon.udpSteer(link.socketFd, data.group, overrides);
    },
  };
  const server = new CallServer(ControlBlock.attach(data.block), (call) => {
    runPosts();
    if (call.method === 'close') {
      closing = true;
      return null;
    }
    return callShard(ctx, call.method, call.args);
  }, () => {
    if (closing) server.stop();
  });
  const postLoop = (async () => {
    while (!closing) {
      const seen = posts.bell;
      runPosts();
      await posts.wait(seen, 1000);
    }
  })();
  await server.serve();
  posts.ring();
  await postLoop;
  // ACKs owed are coalesced into a later turn of the event loop (soft/qp.ts): let them leave.
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  roce.close();
  await link.close();
  port.postMessage({ closed: true } satisfies ShardWorkerMessage);
  port.close();
}

void main();
