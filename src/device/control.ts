// The control queue (docs/device-spec.md §6): one command per chain, checked in the order §6
// gives, executed one at a time, answered with an 8-byte response header and the command's
// response struct. A malformed command is answered with a status and changes nothing; only a ring
// fault (VirtioError from the queue) escapes, and the device then needs reset.
import type { WriteLog } from '../memory/write-log.js';
import type { DescriptorChain } from '../virtio/chain.js';
import { VirtioError } from '../virtio/errors.js';
import type { DeviceQueue } from '../virtio/queue.js';
import { COMMANDS, CTRL_HEADER_BYTES, Cmd, PhysMrFlag, RdmaStatus } from './abi.js';
import { handleCreateCq, handleDestroyCq, handleReqNotifyCq } from './cmd-cq.js';
import { handleAdviseMr, handleDeregMr, handleGetDmaMr, handleRegPhysMr, handleRegUserMr, handleReregPhysMr } from './cmd-mr.js';
import { handleCreateQp, handleDestroyQp, handleModifyQp, handleQueryQp } from './cmd-qp.js';
import {
  handleAddGid, handleCreateAh, handleCreatePd, handleDelGid, handleDestroyAh, handleDestroyPd, handleQueryDevice, handleQueryPort,
} from './cmd-resources.js';
import { handleCreateSrq, handleDestroySrq, handleModifySrq, handleQuerySrq } from './cmd-srq.js';
import type { DeviceCore } from './core.js';
import { invalidArg, notSupported, statusOf } from './errors.js';
import type { Datapath } from './datapath.js';

/** The control queue is virtqueue 0 (§5.1). */
const CONTROL_VQ = 0;

/** What a command handler gets: the command struct (fixed part and tail), a zeroed response. */
export interface CommandContext {
  readonly core: DeviceCore;
  readonly datapath: Datapath;
  readonly req: DataView;
  readonly resp: DataView;
}

export type CommandHandler = (ctx: CommandContext) => void;

/** One handleX() per command (STYLE.md item 7). */
const HANDLERS: ReadonlyMap<Cmd, CommandHandler> = new Map<Cmd, CommandHandler>([
  [Cmd.QueryDevice, handleQueryDevice],
  [Cmd.QueryPort, handleQueryPort],
  [Cmd.CreateCq, handleCreateCq],
  [Cmd.DestroyCq, handleDestroyCq],
  [Cmd.CreatePd, handleCreatePd],
  [Cmd.DestroyPd, handleDestroyPd],
  [Cmd.GetDmaMr, handleGetDmaMr],
  [Cmd.RegUserMr, handleRegUserMr],
  [Cmd.DeregMr, handleDeregMr],
  [Cmd.CreateQp, handleCreateQp],
  [Cmd.ModifyQp, handleModifyQp],
  [Cmd.QueryQp, handleQueryQp],
  [Cmd.DestroyQp, handleDestroyQp],
  [Cmd.CreateAh, handleCreateAh],
  [Cmd.DestroyAh, handleDestroyAh],
  [Cmd.AddGid, handleAddGid],
  [Cmd.DelGid, handleDelGid],
  [Cmd.ReqNotifyCq, handleReqNotifyCq],
  [Cmd.RegPhysMr, handleRegPhysMr],
  [Cmd.ReregPhysMr, handleReregPhysMr],
  [Cmd.CreateSrq, handleCreateSrq],
  [Cmd.ModifySrq, handleModifySrq],
  [Cmd.QuerySrq, handleQuerySrq],
  [Cmd.DestroySrq, handleDestroySrq],
  [Cmd.AdviseMr, handleAdviseMr],
]);

const ZERO_SCAN_BYTES = 4096;

/**
 * Number of tail elements a variable-length command announces, from its fixed part; -1 if the
 * count exceeds the device limit (checked before anything is read or allocated, §14).
 */
function tailCount(core: DeviceCore, cmd: Cmd, fixed: DataView): number {
  const cfg = core.config;
  switch (cmd) {
    case Cmd.RegUserMr: {
      const n = fixed.getUint32(24, true);
      return n > cfg.maxPhysMrPages ? -1 : n;
    }
    case Cmd.RegPhysMr:
    case Cmd.ReregPhysMr: {
      const flagsOff = cmd === Cmd.RegPhysMr ? 36 : 44;
      if (fixed.getUint32(flagsOff, true) & PhysMrFlag.INDIRECT) return 0;
      const n = fixed.getUint32(flagsOff - 4, true);
      return n > cfg.maxPhysMrPages ? -1 : n;
    }
    case Cmd.AdviseMr: {
      const n = fixed.getUint32(8, true);
      return n > 16 ? -1 : n;
    }
    default:
      return 0;
  }
}

export class ControlQueue {
  /** Commands answered, by status (tests and logs). */
  readonly answered = new Map<RdmaStatus, number>();
  /** Why the last command failed (logs: a DEVICE_ERROR is the host's fault and worth reading). */
  lastFailure: unknown = null;

  constructor(private readonly core: DeviceCore, private readonly datapath: Datapath, private readonly memory: Uint8Array) {}

  /**
   * Run every available command on `queue`, in order. The answers are published, and the driver
   * notified, with the pass's other used entries (DeviceCore.publishLater). Throws VirtioError if
   * the ring is broken.
   */
  service(queue: DeviceQueue, log: WriteLog): void {
    // Each round answers at least one chain; the ring holds at most `size` (no unbounded loop).
    for (let round = 0; round <= queue.size; round++) {
      const chains = queue.pop();
      if (chains.length === 0) break;
      for (const chain of chains) queue.addUsed(chain, this.execute(chain, log));
      this.core.publishLater(CONTROL_VQ);
    }
  }

  /** Check, execute and answer one command; returns the used length (§6). */
  execute(chain: DescriptorChain, log: WriteLog): number {
    // Check 1: nothing to parse or nowhere to answer.
    if (chain.readBytes < CTRL_HEADER_BYTES || chain.writeBytes < CTRL_HEADER_BYTES) return 0;
    const reader = chain.reader(this.memory);
    const header = reader.readExact(CTRL_HEADER_BYTES) as Uint8Array;
    const hv = new DataView(header.buffer);
    const cmd = hv.getUint16(0, true) as Cmd;
    const len = hv.getUint32(4, true);
    let status: RdmaStatus;
    let resp = new Uint8Array(0);
    try {
      const shape = COMMANDS.get(cmd);
      // Check 2: len overruns the chain.
      if (len > chain.readBytes - CTRL_HEADER_BYTES) throw invalidArg(`len ${len} overruns the ${chain.readBytes}-byte request`);
      // Check 3: unknown command or feature not negotiated.
      if (shape === undefined || (shape.feature >= 0 && !this.core.has(shape.feature))) {
        throw notSupported(`command ${cmd} is unknown or its feature was not negotiated`);
      }
      // Check 4: sizes.
      if (len < shape.request) throw invalidArg(`command ${cmd} needs ${shape.request} bytes, got ${len}`);
      const fixed = reader.readExact(shape.request) as Uint8Array;
      let body = fixed;
      if (shape.tailElement === 0) {
        for (let left = len - shape.request; left > 0; ) {
          const chunk = reader.readExact(Math.min(left, ZERO_SCAN_BYTES)) as Uint8Array;
          if (chunk.some((b) => b !== 0)) throw invalidArg(`non-zero bytes past the ${shape.request}-byte command ${cmd}`);
          left -= chunk.length;
        }
      } else {
        const count = tailCount(this.core, cmd, new DataView(fixed.buffer));
        if (count < 0) throw invalidArg(`command ${cmd}: element count above the device limit`);
        const tailBytes = count * shape.tailElement;
        if (len !== shape.request + tailBytes) throw invalidArg(`command ${cmd}: len ${len} disagrees with ${count} tail elements`);
        body = new Uint8Array(len);
        body.set(fixed);
        body.set(reader.readExact(tailBytes) as Uint8Array, shape.request);
      }
      // Check 5: room for the answer.
      if (chain.writeBytes < CTRL_HEADER_BYTES + shape.response) throw invalidArg(`command ${cmd} needs ${shape.response} response bytes`);
      // Check 6 (header part): the request header's reserved field.
      if (hv.getUint16(2, true) !== 0) throw invalidArg('reserved request header field is not zero');
      const out = new Uint8Array(shape.response);
      const handler = HANDLERS.get(cmd) as CommandHandler;
      handler({ core: this.core, datapath: this.datapath, req: new DataView(body.buffer, body.byteOffset, body.byteLength), resp: new DataView(out.buffer) });
      status = RdmaStatus.Ok;
      resp = out;
    } catch (err) {
      // A broken ring is not the command's fault: it must reach the device (NEEDS_RESET).
      if (err instanceof VirtioError) throw err;
      status = statusOf(err);
      this.lastFailure = err;
      resp = new Uint8Array(0);
    }
    this.answered.set(status, (this.answered.get(status) ?? 0) + 1);
    const answer = new Uint8Array(CTRL_HEADER_BYTES + resp.length);
    const av = new DataView(answer.buffer);
    av.setUint8(0, status);
    av.setUint32(4, resp.length, true);
    answer.set(resp, CTRL_HEADER_BYTES);
    const w = chain.writer(this.memory);
    w.write(answer, log);
    return w.written;
  }
}
